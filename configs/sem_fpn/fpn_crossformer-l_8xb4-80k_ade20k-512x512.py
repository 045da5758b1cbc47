# CrossFormer-L Semantic FPN on ADE20k, 80k iterations (official recipe).
_base_ = [
    '../_base_/models/fpn_crossformer-s.py',
    '../_base_/datasets/ade20k_crossformer.py',
    '../_base_/schedules/crossformer-fpn_adamw-poly_80k.py',
    '../_base_/runtime_mmseg.py'
]
# 4 images per GPU on 8 GPUs, as the official runs
train_dataloader = dict(batch_size=4)

model = dict(
    backbone=dict(
        arch='large', drop_path_rate=0.5,
        # the official Semantic FPN-L: larger groups and intervals in
        # stages 1-2 (as FPN-S; FPN-B keeps 7 / 8)
        group_size=(14, 14, 7, 7), interval=(16, 8, 2, 1),
        init_cfg=dict(checkpoint='checkpoints/crossformer-l_backbone.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
