# mmseg's runtime with xcit_mm's (what every ADE20k config here runs):
# - runner_type: xcit_mm.Runner reads checkpoints with
#   torch.load(weights_only=True) and an allow-list, resumes from the newest
#   *complete* checkpoint, resumes by itself after a torchrun restart, and
#   runs multi-process on the CPU (gloo) when asked to (XCIT_MM_CPU=1);
# - a stop on a non-finite loss, a check that every loaded checkpoint
#   fits the model, and a checkpoint of the current iteration on SIGTERM /
#   SIGUSR1 (see configs/_base_/default_runtime.py). They are custom
#   hooks here because mmseg keeps `default_hooks` in its schedule bases;
#   the schedules under _base_/schedules/ name the atomic checkpoint hook
#   and the exactly resumable loop (xcit_mm.ResumableIterBasedTrainLoop).
_base_ = 'mmseg::_base_/default_runtime.py'

runner_type = 'xcit_mm.Runner'
custom_hooks = [
    dict(type='xcit_mm.NonFiniteLossHook', action='stop'),
    dict(type='xcit_mm.CheckpointMatchHook', mode='finetune'),
    dict(type='xcit_mm.PreemptionHook', requeue=False),
]
