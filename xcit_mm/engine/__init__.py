"""Task-specific training components (DINO's hook and optimizer
constructor, the k-NN evaluation hook), registered in
:mod:`xcit_mm.registry` with the scope ``xcit_mm``. The generic runtime
(loops, checkpoint and loss hooks, safe loading) is :mod:`xcit_mm.runtime`.
"""
from .hooks import DINOHook, KNNEvalHook
from .optimizers import DINOOptimWrapperConstructor

__all__ = ['DINOHook', 'KNNEvalHook', 'DINOOptimWrapperConstructor']
