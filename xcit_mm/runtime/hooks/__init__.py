from .checkpoint_hook import AtomicCheckpointHook
from .checkpoint_match_hook import CheckpointMatchHook
from .nonfinite_loss_hook import NonFiniteLossHook
from .resource_monitor_hook import ResourceMonitorHook

__all__ = [
    'AtomicCheckpointHook', 'CheckpointMatchHook', 'NonFiniteLossHook',
    'ResourceMonitorHook'
]
