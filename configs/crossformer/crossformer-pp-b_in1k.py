# CrossFormer++-B on ImageNet-1k, 224 px, 300 epochs, 8 GPUs x 128 (official).
_base_ = [
    '../_base_/models/crossformer-s.py',
    '../_base_/datasets/imagenet_bs128_crossformer_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_crossformer_300e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(arch='pp-base', drop_path_rate=0.3),
    head=dict(in_channels=768))
