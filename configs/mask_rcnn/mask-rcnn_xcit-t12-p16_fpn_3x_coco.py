# XCiT-T12/16 Mask R-CNN on COCO, 3x schedule.
_base_ = './mask-rcnn_xcit-s12-p16_fpn_3x_coco.py'

model = dict(
    backbone=dict(
        arch='tiny-12', patch_size=16, drop_path_rate=0.0,
        init_cfg=dict(
            checkpoint='checkpoints/xcit-t12-p16_384-dist_backbone.pth')),
    neck=[
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=192,
             patch_size=16, norm_cfg=dict(type='BN')),
        dict(type='FPN', in_channels=[192] * 4, out_channels=256,
             num_outs=5),
    ])
