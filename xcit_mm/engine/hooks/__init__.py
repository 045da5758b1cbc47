from .checkpoint_hook import AtomicCheckpointHook
from .checkpoint_match_hook import CheckpointMatchHook
from .dino_hook import DINOHook, clip_grad_per_param_
from .knn_eval_hook import KNNEvalHook
from .nonfinite_loss_hook import NonFiniteLossHook
from .resource_monitor_hook import ResourceMonitorHook

__all__ = [
    'AtomicCheckpointHook', 'CheckpointMatchHook', 'DINOHook', 'KNNEvalHook',
    'NonFiniteLossHook', 'ResourceMonitorHook', 'clip_grad_per_param_'
]
