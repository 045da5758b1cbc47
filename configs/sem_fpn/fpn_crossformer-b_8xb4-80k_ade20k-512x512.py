# CrossFormer-B Semantic FPN on ADE20k, 80k iterations (official recipe).
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
        arch='base', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/crossformer-b_backbone.pth')))
