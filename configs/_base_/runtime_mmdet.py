# mmdet's runtime with xcit_mm's (what every COCO config here runs):
# - runner_type: xcit_mm.Runner reads checkpoints with
#   torch.load(weights_only=True) and an allow-list, resumes from the newest
#   *complete* checkpoint, resumes by itself after a torchrun restart, and
#   runs multi-process on the CPU (gloo) when asked to (XCIT_MM_CPU=1);
# - atomic checkpoints, a stop on a non-finite loss, a check that every
#   loaded checkpoint fits the model, and a checkpoint of the current
#   iteration on SIGTERM / SIGUSR1 (see configs/_base_/default_runtime.py).
# The schedules name the exactly resumable loop
# (xcit_mm.ResumableEpochBasedTrainLoop).
_base_ = 'mmdet::_base_/default_runtime.py'

runner_type = 'xcit_mm.Runner'
default_hooks = dict(
    checkpoint=dict(type='xcit_mm.AtomicCheckpointHook'),
    nonfinite_loss=dict(type='xcit_mm.NonFiniteLossHook', action='stop'),
    checkpoint_match=dict(type='xcit_mm.CheckpointMatchHook',
                          mode='finetune'),
    preemption=dict(type='xcit_mm.PreemptionHook', requeue=False),
)
