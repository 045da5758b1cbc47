# XCiT-S12/16 in an mmdet config: mmdet's Mask R-CNN R-50 1x recipe with the
# backbone swapped, the official multi-scale adapter in front of the FPN.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        _delete_=True, type='xcit_mm.XCiT', arch='s12', patch_size=16,
        out_type='featmap', drop_path_rate=0.05,
        # tools/model_converters/xcit2mm.py SRC DST --backbone-only
        init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint='checkpoints/xcit-s12-p16_384-dist_backbone.pth')),
    neck=[
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=384,
             patch_size=16),
        dict(type='FPN', in_channels=[384] * 4, out_channels=256, num_outs=5)
    ])
