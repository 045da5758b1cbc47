# XCiT-S24/16 Mask R-CNN on COCO, 1x schedule.
_base_ = './mask-rcnn_xcit-s12-p16_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='small-24', patch_size=16, drop_path_rate=0.1,
        init_cfg=dict(
            checkpoint='checkpoints/xcit-s24-p16_384-dist_backbone.pth')),
    neck=[
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=384,
             patch_size=16, norm_cfg=dict(type='BN')),
        dict(type='FPN', in_channels=[384] * 4, out_channels=256,
             num_outs=5),
    ])
