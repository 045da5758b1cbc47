"""The generic runtime, opted into by a config.

Nothing here changes mmengine when it is imported. A config uses what it
names: ``runner_type='xcit_mm.Runner'`` (safe checkpoint loading while it
runs, the newest *complete* checkpoint on ``resume``, CPU launch with
gloo), the exactly resumable loops, and the checkpoint, checkpoint-match,
non-finite-loss and preemption hooks. ``configs/_base_/default_runtime.py``
(and the ``runtime_mmdet.py`` / ``runtime_mmseg.py`` bases) name them all.
"""
from .checkpoint import allowed_globals, safe_load, safe_loading
from .fileio import (
                     ATOMIC_BACKEND,
                     AtomicLocalBackend,
                     atomic_torch_save,
                     atomic_write,
                     find_resume_checkpoint,
)
from .hooks import (
                     PREEMPTED_EXIT_CODE,
                     AtomicCheckpointHook,
                     CheckpointMatchHook,
                     NonFiniteLossHook,
                     PreemptionHook,
                     ResourceMonitorHook,
)
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .optim_wrapper import AutocastOptimWrapper
from .runner import Runner

__all__ = [
    'allowed_globals', 'safe_load', 'safe_loading', 'ATOMIC_BACKEND',
    'AtomicLocalBackend', 'atomic_torch_save', 'atomic_write',
    'find_resume_checkpoint', 'AtomicCheckpointHook', 'CheckpointMatchHook',
    'NonFiniteLossHook', 'PREEMPTED_EXIT_CODE', 'PreemptionHook',
    'ResourceMonitorHook',
    'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop',
    'AutocastOptimWrapper', 'Runner'
]
