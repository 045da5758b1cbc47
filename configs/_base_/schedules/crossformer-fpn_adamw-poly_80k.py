# The official CrossFormer Semantic FPN optimisation on ADE20k: AdamW lr 1e-4,
# wd 1e-4 on every parameter (total batch 32), poly decay (power 0.9, to 0)
# over 80k iterations, no warm-up.
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=0,
         end=80000),
]
# total batch 32 = 8 GPUs x 4 images; `tools/train.py --auto-scale-lr`
# scales the lr to another total batch
auto_scale_lr = dict(enable=False, base_batch_size=32)
# resumes at iteration N without reading N batches, and exactly
train_cfg = dict(type='xcit_mm.ResumableIterBasedTrainLoop')
# mmseg keeps the checkpoint hook in its schedules: atomic saves
default_hooks = dict(checkpoint=dict(type='xcit_mm.AtomicCheckpointHook'))
