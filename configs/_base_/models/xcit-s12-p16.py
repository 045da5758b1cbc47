# XCiT-S12/16 ImageNet-1k classifier: mmpretrain's ImageClassifier with the
# xcit_mm backbone. The other sizes (xcit-{n12,...,l24}-p{16,8}.py) override
# `arch`, `patch_size`, `drop_path_rate` and the head's `in_channels` (the
# arch's embed_dims).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='xcit_mm.XCiT',
        arch='small-12',
        patch_size=16,
        out_type='cls_token',
        # stochastic depth, the same rate in every XCA block (official)
        drop_path_rate=0.05),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=384,
        # smoothing 0.1, applied on top of the Mixup / CutMix mixed targets
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        # the official head init: trunc-normal std 0.02, zero bias
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)),
    # batch augmentation in the data preprocessor: Mixup (alpha 0.8) or
    # CutMix (alpha 1.0), each picked with probability 0.5 per batch
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)
