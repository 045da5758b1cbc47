# XCiT-M24/16 UperNet on ADE20k, 160k iterations.
_base_ = './upernet_xcit-s12-p16_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='medium-24', patch_size=16, drop_path_rate=0.15,
        init_cfg=dict(
            checkpoint='checkpoints/xcit-m24-p16_384-dist_backbone.pth')),
    neck=dict(in_channels=512, patch_size=16),
    decode_head=dict(in_channels=[512] * 4),
    auxiliary_head=dict(in_channels=512))
