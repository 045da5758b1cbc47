# XCiT-S12/16 ImageNet-1k classifier: mmpretrain's ImageClassifier with the
# xcit_mm backbone. Other sizes override `arch`, `patch_size` and the head's
# `in_channels` (the arch's embed_dims).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='xcit_mm.XCiT',
        arch='small-12',
        patch_size=16,
        out_type='cls_token',
        drop_path_rate=0.05),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        # the official head init: trunc-normal std 0.02, zero bias
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)),
)
