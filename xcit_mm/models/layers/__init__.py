from .xcit_layers import (LPI, XCA, ClassAttention, ClassAttentionBlock,
                          ConvPatchEmbed, Mlp, PositionalEncodingFourier,
                          XCABlock, xca_attention)

__all__ = [
    'LPI', 'XCA', 'ClassAttention', 'ClassAttentionBlock', 'ConvPatchEmbed',
    'Mlp', 'PositionalEncodingFourier', 'XCABlock', 'xca_attention'
]
