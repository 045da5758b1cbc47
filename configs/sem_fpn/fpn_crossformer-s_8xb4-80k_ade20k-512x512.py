# CrossFormer-S Semantic FPN on ADE20k, 80k iterations (official recipe).
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
        # the official Semantic FPN-S (segmentation/configs/
        # fpn_crossformer_s_ade20k_40k.py, `crossformer` branch, 46.4 mIoU):
        # larger groups and intervals in stages 1-2
        group_size=(14, 14, 7, 7), interval=(16, 8, 2, 1)))
