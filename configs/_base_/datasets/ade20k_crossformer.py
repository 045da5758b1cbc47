# ADE20k tested as the official CrossFormer segmentation code tests it
# (cheerss/CrossFormer, segmentation/align_resize.py, both branches): the
# image is rescaled keeping its ratio to fit (2048, 512) (short side 512,
# long side at most 2048), then resized bilinearly once more to the next
# multiple of 32 of each side (the official `AlignResize(size_divisor=32)`:
# int(ceil(side / 32)) * 32 after the rescale). mmseg 1.x's
# `ResizeToMultiple` makes exactly that second resize (the same
# mmcv.imresize call and rounding), so a 384 x 512 image reaches the
# backbone as 512 x 704, not 512 x 683. Nothing is padded. Training is as
# in ./ade20k.py.
_base_ = './ade20k.py'

test_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
# Multi-scale testing as the official UperNet config runs it
# (`MultiScaleFlipAug(img_scale=(2048, 512), img_ratios=..., flip=False)`
# in ade20k_swin.py): scale r is the box (int(2048 r), int(512 r)) that the
# *original* image is rescaled to, then aligned to 32; no flips. (mmseg
# 1.x's own ADE20k TTA rescales by a factor of the original size and adds
# flips, which is another test.)
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(int(2048 * r), int(512 * r)),
                  keep_ratio=True) for r in img_ratios],
            [dict(type='ResizeToMultiple', size_divisor=32)],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
