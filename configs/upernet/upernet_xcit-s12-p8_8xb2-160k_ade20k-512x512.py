# XCiT-S12/8 UperNet on ADE20k, 160k iterations.
_base_ = './upernet_xcit-s12-p16_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='small-12', patch_size=8, drop_path_rate=0.05,
        init_cfg=dict(
            checkpoint='checkpoints/xcit-s12-p8_384-dist_backbone.pth')),
    neck=dict(in_channels=384, patch_size=8),
    decode_head=dict(in_channels=[384] * 4),
    auxiliary_head=dict(in_channels=384))
