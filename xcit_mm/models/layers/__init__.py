"""Building blocks of the XCiT and CrossFormer backbones."""
from .crossformer_layers import (
                                 CrossFormerBlock,
                                 CrossFormerStage,
                                 CrossScaleEmbedding,
                                 CrossScaleMerging,
                                 DynamicPosBias,
                                 LSDAttention,
                                 dpb_offsets,
                                 dpb_relative_index,
                                 group_tokens,
                                 ungroup_tokens,
)
from .fast_xca import XCAFunction, xca_fast, xca_ops
from .mlp import Mlp
from .xcit_layers import (
                                 IMPLS,
                                 LPI,
                                 XCA,
                                 ClassAttention,
                                 ClassAttentionBlock,
                                 ConvPatchEmbed,
                                 PositionalEncodingFourier,
                                 XCABlock,
                                 check_impl,
                                 xca_attention,
)

__all__ = [
    'LPI', 'XCA', 'ClassAttention', 'ClassAttentionBlock', 'ConvPatchEmbed',
    'Mlp', 'PositionalEncodingFourier', 'XCABlock', 'xca_attention', 'IMPLS',
    'check_impl', 'XCAFunction', 'xca_fast', 'xca_ops', 'CrossFormerBlock',
    'CrossFormerStage', 'CrossScaleEmbedding', 'CrossScaleMerging',
    'DynamicPosBias', 'LSDAttention', 'dpb_offsets', 'dpb_relative_index',
    'group_tokens', 'ungroup_tokens'
]
