# ImageNet-1k at 384 px for fine-tuning: the 224 px recipe (same
# augmentation, full-crop evaluation) with 384 px crops.
_base_ = './imagenet_bs128_xcit_224.py'

train_pipeline = [
    dict(t, scale=384) if t.type == 'RandomResizedCrop' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, scale=384) if t.type == 'ResizeEdge' else
    dict(t, crop_size=384) if t.type == 'CenterCrop' else t
    for t in _base_.test_pipeline
]

train_dataloader = dict(
    batch_size=64,  # per GPU; 8 GPUs x 64 = 512
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
