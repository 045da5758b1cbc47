# The README's first command: a small XCiT trained from scratch on the CPU on
# scikit-learn's handwritten digits (1,797 real 8x8 grayscale images, 10
# classes), prepared by tools/demo.py as an ImageNet-style folder tree:
#   data/digits/{train,val}/<digit>/<index>.png   (80 / 20 stratified split)
# Same tools and stack as the ImageNet configs (mmpretrain ImageClassifier,
# xcit_mm.XCiT, mmengine Runner); only the size and the recipe are small.
# Run it with OMP_NUM_THREADS=1 (tools/demo.py does): its ops are too small
# for OpenMP threads to pay off.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/digits'
img_size = 32  # 8x8 digits upscaled 4x: a 4x4 grid of 8x8 patches

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='xcit_mm.XCiT',
        # a custom tiny XCiT: 4 XCA blocks of 96 channels, 4 heads
        arch=dict(embed_dims=96, depth=4, num_heads=4),
        patch_size=8,
        in_channels=1,
        drop_path_rate=0.05),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=96,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)),
)
data_preprocessor = dict(
    num_classes=10, mean=[85.0], std=[100.0], to_rgb=False)

train_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile', color_type='grayscale'),
    dict(type='Resize', scale=(img_size, img_size), interpolation='bicubic'),
    # shifts of up to 3 px (< 1 original pixel); no flips for digits
    dict(type='RandomCrop', crop_size=img_size, padding=3, pad_val=0),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile', color_type='grayscale'),
    dict(type='Resize', scale=(img_size, img_size), interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,  # tiny images: loading in the main process is fastest
    persistent_workers=False,  # (mmpretrain's train.py defaults it on)
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root=data_root,
                 data_prefix='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root=data_root,
                 data_prefix='val', pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 30
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    # the ImageNet recipe's weight-decay exemptions
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.temperature': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0),
            '.gamma': dict(decay_mult=0.0),
        }),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=2,
         end=max_epochs, convert_to_iter_based=True),
]
# The held-out split is only watched during training (every 5 epochs); the
# final, last-epoch model is what tools/test.py evaluates (no selection).
train_cfg = dict(
    type='xcit_mm.ResumableEpochBasedTrainLoop', max_epochs=max_epochs,
    val_interval=5)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_best=None),
)
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0, deterministic=False)
