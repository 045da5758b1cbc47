"""Training-time components: hooks and loops (registered in
:mod:`xcit_mm.registry`, scope ``xcit_mm``)."""
from .hooks import *  # noqa: F401,F403
from .hooks import (AtomicCheckpointHook, CheckpointMatchHook,
                    NonFiniteLossHook, ResourceMonitorHook)
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .optim_wrapper import AutocastOptimWrapper

__all__ = [
    'AtomicCheckpointHook', 'CheckpointMatchHook', 'NonFiniteLossHook',
    'ResourceMonitorHook', 'ResumableEpochBasedTrainLoop',
    'ResumableIterBasedTrainLoop', 'AutocastOptimWrapper'
]
