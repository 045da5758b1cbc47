# XCiT-T12/8 UperNet on ADE20k, 160k iterations.
_base_ = './upernet_xcit-s12-p16_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='tiny-12', patch_size=8, drop_path_rate=0.0,
        init_cfg=dict(
            checkpoint='checkpoints/xcit-t12-p8_384-dist_backbone.pth')),
    neck=dict(in_channels=192, patch_size=8),
    decode_head=dict(in_channels=[192] * 4),
    auxiliary_head=dict(in_channels=192))
