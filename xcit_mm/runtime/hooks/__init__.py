from .checkpoint_hook import AtomicCheckpointHook
from .checkpoint_match_hook import CheckpointMatchHook
from .nonfinite_loss_hook import NonFiniteLossHook
from .preemption_hook import PREEMPTED_EXIT_CODE, PreemptionHook
from .resource_monitor_hook import ResourceMonitorHook

__all__ = [
    'AtomicCheckpointHook', 'CheckpointMatchHook', 'NonFiniteLossHook',
    'PREEMPTED_EXIT_CODE', 'PreemptionHook', 'ResourceMonitorHook'
]
