# XCiT-S24/16 Semantic FPN on ADE20k, 80k iterations.
_base_ = './fpn_xcit-s12-p16_8xb2-80k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='small-24', patch_size=16, drop_path_rate=0.1,
        init_cfg=dict(
            checkpoint='checkpoints/xcit-s24-p16_384-dist_backbone.pth')),
    # FPN width = the backbone's width, as in the official configs
    neck=[
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=384,
             patch_size=16, norm_cfg=dict(type='BN')),
        dict(type='FPN', in_channels=[384] * 4, out_channels=384,
             num_outs=4),
    ],
    decode_head=dict(in_channels=[384] * 4))
