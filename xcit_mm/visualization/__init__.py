"""Drawing helpers: XCiT attention maps (see :mod:`.attention`)."""
from .attention import (
                        build_xcit_from_checkpoint,
                        compute_attention,
                        draw_cls_attention_grid,
                        draw_xca_matrices,
                        extract_backbone_state,
                        load_image,
                        overlay,
)

__all__ = [
    'build_xcit_from_checkpoint', 'compute_attention',
    'draw_cls_attention_grid', 'draw_xca_matrices', 'extract_backbone_state',
    'load_image', 'overlay'
]
