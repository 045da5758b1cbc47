# The official XCiT ADE20k optimisation over 160k iterations: AdamW lr 6e-5,
# wd 0.01 (total batch 16), poly decay (power 1, to 0) over the whole run
# with a linear warm-up over the first 1500 iterations from 1e-6x. The two
# schedulers overlap from iteration 0 and multiply, as mmcv 1.x's warm-up
# did in the official runs (mmengine's LinearLR reaches 1 one iteration
# sooner: the lr differs by < 0.07% near the end of the warm-up).
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    # As in the official run: no decay on the LayerNorms (norm1/2/3). The XCA
    # `temperature` and the layer scales `gamma1/2/3` *are* decayed there;
    # add e.g. '.temperature': dict(decay_mult=0.) to change that.
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=0,
         end=160000),
]
# total batch 16 = 8 GPUs x 2 images; `tools/train.py --auto-scale-lr`
# scales the lr to another total batch
# resumes at iteration N without reading N batches, and exactly (same
# batches, augmentation and drop path as an uninterrupted run)
train_cfg = dict(
    type='xcit_mm.ResumableIterBasedTrainLoop', max_iters=160000,
    val_interval=16000)
auto_scale_lr = dict(enable=False, base_batch_size=16)
# mmseg keeps the checkpoint hook in its schedules: atomic saves
default_hooks = dict(checkpoint=dict(type='xcit_mm.AtomicCheckpointHook'))
