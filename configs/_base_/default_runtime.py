# Runtime shared by the classification configs (mmpretrain registries).
default_scope = 'mmpretrain'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # a checkpoint every epoch; keep the last 3 and the best top-1
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # `tools/test.py --show-dir DIR` turns this on
    visualization=dict(type='VisualizationHook', enable=False),
)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo when there is no GPU
    dist_cfg=dict(backend='nccl'),
)

# Scalars go to <work_dir>/<timestamp>/vis_data. For TensorBoard,
# `pip install tensorboard` and add
#   --cfg-options visualizer.vis_backends.0.type=TensorboardVisBackend
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
