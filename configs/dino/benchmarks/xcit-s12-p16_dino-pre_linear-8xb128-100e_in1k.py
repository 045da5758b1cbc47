# Linear probe of a DINO XCiT-S12/16 (DINO's eval_linear for XCiT): one
# Linear layer on the frozen class token (384-d, after class attention and
# the final norm), SGD momentum 0.9, lr 1e-3 x total_batch / 256, no weight
# decay, cosine to 0 over 100 epochs; RandomResizedCrop + flip for training,
# resize 256 + centre crop 224 for evaluation. mmpretrain's ImageClassifier.
#
# The backbone comes from a DINO checkpoint: the teacher's backbone of a
# tools/train.py run (prefix 'teacher.backbone.'), or an official file
# converted with tools/model_converters/dino2mm.py.
_base_ = [
    '../../_base_/datasets/imagenet_bs128_xcit_224.py',
    '../../_base_/default_runtime.py',
]
dino_checkpoint = 'work_dirs/dino_xcit-s12-p16_8xb128-300e_in1k/epoch_300.pth'

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='xcit_mm.XCiT',
        arch='small-12',
        patch_size=16,
        out_type='cls_token',
        frozen_stages=12,  # = depth: everything frozen, norms in eval mode
        init_cfg=dict(type='Pretrained', checkpoint=dino_checkpoint,
                      prefix='teacher.backbone.')),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        # DINO's LinearClassifier init: weight N(0, 0.01), bias 0
        init_cfg=dict(type='Normal', layer='Linear', std=0.01, bias=0.)),
)
train_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    sampler=dict(type='DefaultSampler', shuffle=True, _delete_=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 100
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=1e-3 * 1024 / 256, momentum=0.9,
                   weight_decay=0.))
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(
    type='xcit_mm.ResumableEpochBasedTrainLoop', max_epochs=max_epochs,
    val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
