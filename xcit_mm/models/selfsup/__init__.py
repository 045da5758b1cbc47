from .dino import (
                   DINO,
                   DINODistributedDataParallel,
                   clip_grad_per_param_,
                   teacher_momentum,
)

__all__ = [
    'DINO', 'DINODistributedDataParallel', 'clip_grad_per_param_',
    'teacher_momentum'
]
