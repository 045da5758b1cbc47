"""Training-time components: hooks, loops and optimizer constructors
(registered in :mod:`xcit_mm.registry`, scope ``xcit_mm``)."""
from .hooks import *  # noqa: F401,F403
from .hooks import (AtomicCheckpointHook, CheckpointMatchHook, DINOHook,
                    KNNEvalHook, NonFiniteLossHook, ResourceMonitorHook)
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .optim_wrapper import AutocastOptimWrapper
from .optimizers import DINOOptimWrapperConstructor

__all__ = [
    'AtomicCheckpointHook', 'CheckpointMatchHook', 'DINOHook', 'KNNEvalHook',
    'NonFiniteLossHook', 'ResourceMonitorHook', 'ResumableEpochBasedTrainLoop',
    'ResumableIterBasedTrainLoop', 'AutocastOptimWrapper',
    'DINOOptimWrapperConstructor'
]
