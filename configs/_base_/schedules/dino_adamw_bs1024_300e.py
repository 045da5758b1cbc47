# DINO's optimisation for XCiT at a total batch of 1024, 300 epochs:
# AdamW; lr warmed up linearly from 0 over 10 epochs, then a cosine to
# 1e-6; weight decay following a cosine from 0.04 to 0.4; no decay on biases
# and 1-D parameters (norms, layer-scale gammas). The rest of DINO's step (per-
# parameter gradient clipping at 3.0, the last head layer frozen for the
# first epoch, the teacher moved after every step with a momentum cosine
# from 0.996 to 1) is xcit_mm.DINO.train_step, set by the model's
# arguments; xcit_mm.DINOHook gives the model the iteration it is at.
#
# Peak lr: DINO's rule 5e-4 x total_batch / 256 = 2e-3 at 1024 (VISSL's XCiT
# S12/16 value; its M24 configs use 1e-3). `auto_scale_lr` applies the same
# linear rule to another total batch with --auto-scale-lr.
max_epochs = 300
warmup_epochs = 10
lr = 5e-4 * 1024 / 256

optim_wrapper = dict(
    constructor='xcit_mm.DINOOptimWrapperConstructor',  # student only
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.04,
                   betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={'.gamma': dict(decay_mult=0.0)}),
)
param_scheduler = [
    # DINO's warm-up, np.linspace(0, lr, warm-up iterations): mmengine's
    # LinearLR cannot start at 0, xcit_mm.LinearWarmupLR can
    dict(type='xcit_mm.LinearWarmupLR', start_factor=0., by_epoch=True,
         begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
    # decayed groups 0.04 -> 0.4; groups without decay stay at 0
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
         eta_min_ratio=10.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(
    type='xcit_mm.ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=1024)

custom_hooks = [dict(type='xcit_mm.DINOHook')]
