# XCiT-T12/16 on ImageNet-1k, 224 px, 400 epochs, 8 GPUs x 128 (official).
_base_ = [
    '../_base_/models/xcit-t12-p16.py',
    '../_base_/datasets/imagenet_bs128_xcit_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_xcit_400e.py',
    '../_base_/default_runtime.py',
]
