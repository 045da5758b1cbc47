from .arch import check_patch_size, normalize_out_indices
from .xcit_convert import (detect_format, foreign_to_backbone, infer_arch,
                           load_pretrained_backbone, to_xcit_mm)

__all__ = [
    'check_patch_size', 'normalize_out_indices', 'detect_format',
    'foreign_to_backbone', 'infer_arch', 'load_pretrained_backbone',
    'to_xcit_mm'
]
