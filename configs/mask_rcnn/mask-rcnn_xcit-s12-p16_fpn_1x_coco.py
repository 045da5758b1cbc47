# XCiT-S12/16 Mask R-CNN on COCO, 1x schedule (official XCiT recipe).
_base_ = [
    '../_base_/models/mask-rcnn_xcit-s12-p16_fpn.py',
    '../_base_/datasets/coco-instance_detr-aug.py',
    '../_base_/schedules/mask-rcnn_adamw_1x.py',
    '../_base_/runtime_mmdet.py'
]
