# ImageNet-1k with DINO's multi-crop augmentation: 2 global 224 px views and
# 8 local 96 px views per image (mmpretrain's MultiView), labels unused.
# Per view (DINO's DataAugmentationDINO): bicubic RandomResizedCrop
# (global scale (0.4, 1), local (0.05, 0.4)), flip 0.5, colour jitter
# (0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale 0.2, Gaussian blur with sigma
# U(0.1, 2.0) drawn per image (p 1.0 on global view 1, 0.1 on global view 2,
# 0.5 on local views), solarisation (threshold 128) p 0.2 on global view 2.
# VISSL's XCiT configs use scales (0.3, 1) and (0.05, 0.3): set
# global_crop.crop_ratio_range / local_crop.crop_ratio_range to match.
dataset_type = 'xcit_mm.ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)  # images are loaded as BGR

num_local_views = 8
global_crop = dict(type='RandomResizedCrop', scale=224,
                   crop_ratio_range=(0.4, 1.0), interpolation='bicubic',
                   backend='pillow')
local_crop = dict(type='RandomResizedCrop', scale=96,
                  crop_ratio_range=(0.05, 0.4), interpolation='bicubic',
                  backend='pillow')
flip_and_color = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomApply', prob=0.8, transforms=[
        # mmpretrain's ColorJitter with a numpy-2-safe hue shift
        dict(type='xcit_mm.ColorJitter', brightness=0.4, contrast=0.4,
             saturation=0.2, hue=0.1)]),
    # ITU-R 601 luma weights in BGR order (torchvision's grayscale)
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.299)),
]
# sigma ~ U(0.1, 2.0) per image: magnitude U(0, 10) mapped onto (0.1, 2.0)
blur = dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
            magnitude_std='inf')
solarize = dict(type='Solarize', thr=128, prob=0.2)

train_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile'),
    dict(type='MultiView',
         num_views=[1, 1, num_local_views],
         transforms=[
             [global_crop, *flip_and_color, dict(blur, prob=1.0)],
             [global_crop, *flip_and_color, dict(blur, prob=0.1), solarize],
             [local_crop, *flip_and_color, dict(blur, prob=0.5)],
         ]),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,  # per GPU; 8 GPUs x 128 = 1024
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
)

# k-NN evaluation (tools/analysis_tools/knn_eval.py, xcit_mm.KNNEvalHook):
# DINO's eval_knn transform, bicubic resize of the short side to 256 and a
# centre crop of 224.
knn_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
knn_train_dataloader = dict(
    batch_size=128, num_workers=10,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=knn_pipeline))
knn_val_dataloader = dict(
    batch_size=128, num_workers=10,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline=knn_pipeline))
