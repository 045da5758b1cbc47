from .dino_constructor import DINOOptimWrapperConstructor

__all__ = ['DINOOptimWrapperConstructor']
