# The official CrossFormer ImageNet schedule: AdamW, 300 epochs, 20 warm-up
# epochs, cosine decay, gradient clipping at norm 5.
#
# Learning rates follow the official linear rule x total_batch / 512 (base
# 5e-4, warm-up start 5e-7, minimum 5e-6), stated here at the reference
# batch 8 GPUs x 128 = 1024; `--auto-scale-lr` applies the same rule to
# another total batch.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=5e-4 * 1024 / 512, weight_decay=0.05, eps=1e-8,
        betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=5.0),
    # official: no decay on 1-D tensors (norms, biases), i.e. on every
    # LayerNorm and bias; convolution and linear weights are decayed
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
)

param_scheduler = [
    # linear warm-up from 5e-7 x 1024 / 512 = 1e-6
    dict(type='LinearLR', start_factor=5e-7 / 5e-4, by_epoch=True, begin=0,
         end=20, convert_to_iter_based=True),
    # cosine to 5e-6 x 1024 / 512 = 1e-5 at the last epoch
    dict(type='CosineAnnealingLR', eta_min=5e-6 * 1024 / 512, by_epoch=True,
         begin=20, convert_to_iter_based=True),
]

train_cfg = dict(
    type='xcit_mm.ResumableEpochBasedTrainLoop', max_epochs=300,
    val_interval=1)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=1024)
