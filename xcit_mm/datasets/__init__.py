"""xcit_mm datasets: importing this module registers them in
:data:`xcit_mm.registry.DATASETS` (scope ``xcit_mm``)."""
from .imagenet import DatasetNotFoundError, ImageNet, check_image_folder

__all__ = ['DatasetNotFoundError', 'ImageNet', 'check_image_folder']
