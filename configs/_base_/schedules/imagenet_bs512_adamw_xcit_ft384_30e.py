# Fine-tuning at 384 px from a 224 px model (DeiT's recipe, which XCiT
# follows): 30 epochs at a constant lr of 5e-6 per 512 images, weight decay
# 1e-8, no warm-up; the same weight-decay exemptions and EMA.
_base_ = './imagenet_bs1024_adamw_xcit_400e.py'

optim_wrapper = dict(optimizer=dict(lr=5e-6 * 512 / 512, weight_decay=1e-8))
param_scheduler = [
    dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=30)
]
train_cfg = dict(
    type='xcit_mm.ResumableEpochBasedTrainLoop', max_epochs=30, val_interval=1)
auto_scale_lr = dict(base_batch_size=512)
