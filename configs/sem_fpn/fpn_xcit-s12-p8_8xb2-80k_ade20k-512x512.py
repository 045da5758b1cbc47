# XCiT-S12/8 Semantic FPN on ADE20k, 80k iterations.
_base_ = './fpn_xcit-s12-p16_8xb2-80k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='small-12', patch_size=8, drop_path_rate=0.05,
        init_cfg=dict(
            checkpoint='checkpoints/xcit-s12-p8_384-dist_backbone.pth')),
    # FPN width = the backbone's width, as in the official configs
    neck=[
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=384,
             patch_size=8, norm_cfg=dict(type='BN')),
        dict(type='FPN', in_channels=[384] * 4, out_channels=384,
             num_outs=4),
    ],
    decode_head=dict(in_channels=[384] * 4))
