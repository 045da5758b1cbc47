from .crossformer import CrossFormer
from .xcit import XCiT, resolve_arch

__all__ = ['CrossFormer', 'XCiT', 'resolve_arch']
