# ImageNet-1k at 224 px with the official CrossFormer (Swin) augmentation:
# the XCiT / DeiT training pipeline (RandomResizedCrop, flip, RandAugment
# rand-m9-mstd0.5-inc1, random erasing 0.25 in pixel mode; colour jitter is
# off whenever RandAugment is on) without repeated augmentation, and the
# 0.875 centre crop for evaluation (short side to 256, crop 224).
_base_ = './imagenet_bs128_xcit_224.py'

train_dataloader = dict(sampler=dict(type='DefaultSampler', shuffle=True))
test_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(batch_size=128, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
