from .dino import DINO, teacher_momentum

__all__ = ['DINO', 'teacher_momentum']
