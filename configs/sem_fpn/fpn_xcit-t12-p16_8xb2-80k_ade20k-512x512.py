# XCiT-T12/16 Semantic FPN on ADE20k, 80k iterations.
_base_ = './fpn_xcit-s12-p16_8xb2-80k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='tiny-12', patch_size=16, drop_path_rate=0.0,
        init_cfg=dict(
            checkpoint='checkpoints/xcit-t12-p16_384-dist_backbone.pth')),
    # FPN width = the backbone's width, as in the official configs
    neck=[
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=192,
             patch_size=16, norm_cfg=dict(type='BN')),
        dict(type='FPN', in_channels=[192] * 4, out_channels=192,
             num_outs=4),
    ],
    decode_head=dict(in_channels=[192] * 4))
