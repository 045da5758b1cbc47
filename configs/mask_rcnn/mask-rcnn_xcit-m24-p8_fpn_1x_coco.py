# XCiT-M24/8 Mask R-CNN on COCO, 1x schedule.
_base_ = './mask-rcnn_xcit-s12-p16_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='medium-24', patch_size=8, drop_path_rate=0.15,
        init_cfg=dict(
            checkpoint='checkpoints/xcit-m24-p8_384-dist_backbone.pth')),
    neck=[
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=512,
             patch_size=8, norm_cfg=dict(type='BN')),
        dict(type='FPN', in_channels=[512] * 4, out_channels=256,
             num_outs=5),
    ])
