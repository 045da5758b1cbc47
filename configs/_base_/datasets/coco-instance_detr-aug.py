# COCO 2017 instance segmentation (data/coco) with the DETR-style multi-scale
# AutoAugment of the official XCiT (and Swin) Mask R-CNN: either a resize of
# the short side to one of 480..800 (long side <= 1333), or a resize to
# 400/500/600, a random 384..600 crop and a resize to 480..800. Test at
# (1333, 800) (coco_instance.py). Evaluation: mmdet's CocoMetric, bbox and
# segm. Images are read by xcit_mm.LoadImageFromFile.
_base_ = './coco_instance.py'

multi_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333),
                (608, 1333), (640, 1333), (672, 1333), (704, 1333),
                (736, 1333), (768, 1333), (800, 1333)]
train_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile',
         backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scales,
                  keep_ratio=True)],
            [
                dict(type='RandomChoiceResize',
                     scales=[(400, 1333), (500, 1333), (600, 1333)],
                     keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range',
                     crop_size=(384, 600), allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scales,
                     keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
# 2 images per GPU on 8 GPUs, as the official runs
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
