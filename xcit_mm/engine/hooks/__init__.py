from .dino_hook import DINOHook, clip_grad_per_param_
from .knn_eval_hook import KNNEvalHook

__all__ = ['DINOHook', 'KNNEvalHook', 'clip_grad_per_param_']
