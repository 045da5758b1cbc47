from .dino_head import DINOHead, WeightNormLinear
from .distill_head import DistillClsHead

__all__ = ['DINOHead', 'DistillClsHead', 'WeightNormLinear']
