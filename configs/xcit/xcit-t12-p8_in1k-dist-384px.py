# XCiT-T12/8, distilled, fine-tuned at 384 px for 30 epochs from the 224 px
# distilled model: train xcit-t12-p8_in1k-dist.py first, or convert the
# official xcit_tiny_12_p8_224_dist.pth with tools/model_converters/xcit2mm.py
# and pass it with --cfg-options load_from=PATH.
_base_ = [
    '../_base_/models/xcit-t12-p8.py',
    '../_base_/models/distill_regnety-160.py',
    '../_base_/datasets/imagenet_bs64_xcit_384.py',
    '../_base_/schedules/imagenet_bs512_adamw_xcit_ft384_30e.py',
    '../_base_/default_runtime.py',
]
model = _base_.distill
load_from = 'work_dirs/xcit-t12-p8_in1k-dist/epoch_400.pth'
