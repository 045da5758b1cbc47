"""Conversion of official DINO training checkpoints (student, teacher,
optimizer and schedules) into a state that an xcit_mm run resumes from.
The XCiT and CrossFormer weight conversions live beside their backbones
(:mod:`xcit_mm.models.backbones.xcit_convert`,
:mod:`xcit_mm.models.backbones.crossformer_convert`)."""
from .dino import (convert_dino_backbone, convert_dino_full_checkpoint,
                   dino_param_order, fast_forward_schedulers)

__all__ = [
    'convert_dino_backbone', 'convert_dino_full_checkpoint',
    'dino_param_order', 'fast_forward_schedulers'
]
