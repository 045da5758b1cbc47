"""Data components (registered in :mod:`xcit_mm.registry`, scope
``xcit_mm``) and checks of data set configs."""
from .transforms import LoadImageFromFile

__all__ = ['LoadImageFromFile']
