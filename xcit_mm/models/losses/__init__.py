from .dino_loss import DINOLoss
from .distillation import DistillationLoss

__all__ = ['DINOLoss', 'DistillationLoss']
