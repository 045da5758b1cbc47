from .xcit_neck import XCiTMultiScaleNeck

__all__ = ['XCiTMultiScaleNeck']
