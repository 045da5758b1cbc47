# CrossFormer-S UperNet on ADE20k, 160k iterations (official recipe).
_base_ = [
    '../_base_/models/upernet_crossformer-s.py',
    '../_base_/datasets/ade20k_crossformer.py',
    '../_base_/schedules/xcit-seg_adamw-poly_160k.py',
    '../_base_/runtime_mmseg.py'
]
# 2 images per GPU on 8 GPUs, as the official runs
train_dataloader = dict(batch_size=2)
