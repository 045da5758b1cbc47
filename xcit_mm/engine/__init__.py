"""Task-specific training components (DINO's hook, optimizer
constructor and linear warm-up from 0, the k-NN evaluation hook), registered in
:mod:`xcit_mm.registry` with the scope ``xcit_mm``. The generic runtime
(loops, checkpoint and loss hooks, safe loading) is :mod:`xcit_mm.runtime`.
"""
from .hooks import DINOHook, KNNEvalHook
from .optimizers import DINOOptimWrapperConstructor
from .schedulers import LinearWarmupLR

__all__ = [
    'DINOHook', 'KNNEvalHook', 'DINOOptimWrapperConstructor', 'LinearWarmupLR'
]
