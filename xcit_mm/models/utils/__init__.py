from .xcit_convert import (convert_checkpoint, detect_format,
                           foreign_to_backbone, infer_arch,
                           load_pretrained_backbone, to_xcit_mm,
                           unwrap_state_dict)

__all__ = [
    'convert_checkpoint', 'detect_format', 'foreign_to_backbone', 'infer_arch',
    'load_pretrained_backbone', 'to_xcit_mm', 'unwrap_state_dict'
]
