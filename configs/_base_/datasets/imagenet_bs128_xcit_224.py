# ImageNet-1k at 224 px with the official XCiT (DeiT) training augmentation.
# Layout (mmpretrain's): data/imagenet/{train,val}/<wnid>/*.JPEG, or flat
# folders plus meta/{train,val}.txt. `xcit_mm.ImageNet` is mmpretrain's
# ImageNet that fails with these instructions when the folder is missing.
dataset_type = 'xcit_mm.ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(
    num_classes=1000,
    # RGB mean / std of ImageNet (also what the RegNetY teacher expects)
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,  # images are loaded as BGR
)
bgr_mean = data_preprocessor['mean'][::-1]
bgr_std = data_preprocessor['std'][::-1]

train_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    # timm's rand-m9-mstd0.5-inc1: 2 ops, magnitude 9 of 10 with std 0.5,
    # the "increasing" op set
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean],
                      interpolation='bicubic')),
    # timm's random erasing 0.25 in 'pixel' mode: per-pixel normal noise,
    # here drawn before normalisation with the dataset's mean / std
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3, fill_color=bgr_mean,
         fill_std=bgr_std),
    dict(type='PackInputs'),
]
# Full-crop evaluation (crop ratio 1.0): short side to 224, centre crop 224.
test_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile'),
    dict(type='ResizeEdge', scale=224, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,  # per GPU; the recipe is 8 GPUs x 128 = 1024
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    # repeated augmentation (3 augmented copies of each image per epoch,
    # spread over the GPUs), as DeiT's RASampler
    sampler=dict(type='RepeatAugSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=192,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
