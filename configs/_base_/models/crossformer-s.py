# CrossFormer-S ImageNet-1k classifier: mmpretrain's ImageClassifier with the
# xcit_mm backbone. The final LayerNorm sits in the backbone and the token
# mean in mmpretrain's GlobalAveragePooling neck: together the official
# classifier's `avgpool(norm(x))` before its linear head. The other sizes
# (crossformer-{t,b,l}, crossformer-pp-{s,b,l,h}) override `arch`,
# `drop_path_rate` and the head's `in_channels` (8 x embed_dims).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='xcit_mm.CrossFormer',
        arch='small',
        out_indices=(3, ),
        final_norm=True,
        # stochastic depth rising linearly over all blocks to this (official)
        drop_path_rate=0.2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        # smoothing 0.1, applied on top of the Mixup / CutMix mixed targets
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        # the official head init: trunc-normal std 0.02, zero bias
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)),
    # Mixup (alpha 0.8) or CutMix (alpha 1.0), each with probability 0.5
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)
