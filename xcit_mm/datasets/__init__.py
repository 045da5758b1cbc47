"""xcit_mm data components: importing this module registers them in
:data:`xcit_mm.registry.DATASETS` and :data:`xcit_mm.registry.TRANSFORMS`
(scope ``xcit_mm``)."""
from .imagenet import ImageNet, check_image_folder
from .transforms import ColorJitter, LoadImageFromFile, adjust_hue

__all__ = [
    'ImageNet', 'check_image_folder', 'LoadImageFromFile', 'ColorJitter',
    'adjust_hue'
]
