from .fast_xca import XCAFunction, xca_fast, xca_ops
from .xcit_layers import (IMPLS, LPI, XCA, ClassAttention,
                          ClassAttentionBlock, ConvPatchEmbed, Mlp,
                          PositionalEncodingFourier, XCABlock, check_impl,
                          xca_attention)

__all__ = [
    'LPI', 'XCA', 'ClassAttention', 'ClassAttentionBlock', 'ConvPatchEmbed',
    'Mlp', 'PositionalEncodingFourier', 'XCABlock', 'xca_attention', 'IMPLS',
    'check_impl', 'XCAFunction', 'xca_fast', 'xca_ops'
]
