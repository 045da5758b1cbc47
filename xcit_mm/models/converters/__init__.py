"""Checked conversions of foreign checkpoints into xcit_mm models."""
from .dino import (convert_dino_backbone, convert_dino_full_checkpoint,
                   dino_param_order, fast_forward_schedulers)

__all__ = [
    'convert_dino_backbone', 'convert_dino_full_checkpoint',
    'dino_param_order', 'fast_forward_schedulers'
]
