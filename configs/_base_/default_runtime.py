# Runtime shared by the classification and DINO configs (mmpretrain
# registries). Everything a run does beyond mmengine's defaults is named
# here, so every tool that builds the Runner from this config (xcit_mm's,
# mmpretrain's, mmdet's or mmseg's tools/train.py) runs the same thing:
# - runner_type: xcit_mm.Runner reads checkpoints (load_from, resume,
#   init_cfg Pretrained) with torch.load(weights_only=True) and an
#   allow-list, resumes from the newest *complete* checkpoint of the work
#   dir, resumes by itself after a torchrun restart, and runs multi-process
#   on the CPU (gloo) when asked to (XCIT_MM_CPU=1);
# - checkpoint: written atomically (temporary file + rename), the
#   last_checkpoint pointer moved before old files are deleted;
# - nonfinite_loss: a NaN / inf loss stops training and names the
#   iteration, and no checkpoint with non-finite weights is written;
# - checkpoint_match: a checkpoint that does not fit the model is an error
#   (load_from: at least half of the tensors; resume and test: all of them);
# - preemption: on SIGTERM / SIGUSR1 every rank finishes its iteration, one
#   checkpoint of that iteration is written and the processes exit with
#   status 75; with requeue=True a Slurm job requeues itself and resumes
#   (--cfg-options default_hooks.preemption.requeue=True, tools/README.md).
# The schedules name the exactly resumable loops
# (xcit_mm.ResumableEpochBasedTrainLoop / ResumableIterBasedTrainLoop), and
# the data pipelines xcit_mm.LoadImageFromFile (names a bad image file).
default_scope = 'mmpretrain'
runner_type = 'xcit_mm.Runner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # a checkpoint every epoch; keep the last 3 and the best top-1
    checkpoint=dict(type='xcit_mm.AtomicCheckpointHook', interval=1,
                    max_keep_ckpts=3, save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # `tools/test.py --show-dir DIR` turns this on
    visualization=dict(type='VisualizationHook', enable=False),
    nonfinite_loss=dict(type='xcit_mm.NonFiniteLossHook', action='stop'),
    checkpoint_match=dict(type='xcit_mm.CheckpointMatchHook',
                          mode='finetune'),
    preemption=dict(type='xcit_mm.PreemptionHook', requeue=False),
)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # xcit_mm.Runner uses gloo on the CPU (XCIT_MM_CPU=1)
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
