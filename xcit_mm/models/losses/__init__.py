from .distillation import DistillationLoss

__all__ = ['DistillationLoss']
