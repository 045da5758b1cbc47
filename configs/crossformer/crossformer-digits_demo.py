# The digits demo (tools/demo.py --model crossformer) with a small
# CrossFormer instead of the XCiT: the same data, pipeline and recipe as
# configs/xcit/xcit-digits_demo.py, over 10 epochs instead of 30 (it passes
# 90% held-out top-1 by epoch 5). The 32x32 input gives 8x8, 4x4, 2x2 and
# 1x1 token maps; stage 1 alternates SDA on 4x4 groups with LDA on 4x4
# groups sampled every 2nd token, later stages attend globally.
_base_ = ['../xcit/xcit-digits_demo.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='xcit_mm.CrossFormer',
        arch=dict(embed_dims=32, depths=(2, 2, 2, 1), num_heads=(2, 4, 8, 8),
                  group_size=(4, 4, 4, 4), interval=(2, 1, 1, 1)),
        in_channels=1,
        drop_path_rate=0.05),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=256))
optim_wrapper = dict(
    # the ImageNet recipe's exemptions: no decay on norms and biases
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0,
                       bias_decay_mult=0.0))

max_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=2,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
