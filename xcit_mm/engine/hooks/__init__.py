from .dino_hook import DINOHook
from .knn_eval_hook import KNNEvalHook

__all__ = ['DINOHook', 'KNNEvalHook']
