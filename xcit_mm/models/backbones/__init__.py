from .xcit import XCiT, resolve_arch

__all__ = ['XCiT', 'resolve_arch']
