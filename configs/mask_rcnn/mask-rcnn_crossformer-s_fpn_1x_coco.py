# CrossFormer-S Mask R-CNN on COCO, 1x schedule (12 epochs; official recipe).
_base_ = [
    '../_base_/models/mask-rcnn_crossformer-s_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/crossformer-det_adamw_1x.py',
    '../_base_/runtime_mmdet.py'
]
# 2 images per GPU on 8 GPUs, as the official runs
train_dataloader = dict(batch_size=2)
