"""FLOP counting with the attention matmuls, against counts by hand."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.utils import TINY_ARCH
from xcit_mm.models import XCiT
from xcit_mm.utils import get_model_complexity


def xcit_flops_by_hand(C: int, depth: int, heads: int, H: int, W: int,
                       cls_token: bool = True, tokens_norm: bool = True,
                       mlp_ratio: int = 4) -> int:
    """Multiply-adds of an XCiT-p16 forward (batch 1), mmengine/fvcore
    convention: convs and linears without bias, matmuls, norms at 5 (LN) or
    2 (BN in eval) per element, nothing element-wise."""
    dims = [3, C // 8, C // 4, C // 2, C]
    h, w, total = H, W, 0  # the stem runs on the raw image
    for cin, cout in zip(dims[:-1], dims[1:]):  # 3x3 stride-2 convs + BN
        h, w = -(-h // 2), -(-w // 2)  # padding 1: ceil(side / 2)
        total += h * w * cout * cin * 9 + 2 * h * w * cout
    N, d, hid = h * w, C // heads, mlp_ratio * C
    total += N * 64 * C  # Fourier features -> C (1x1 conv)
    per_block = (
        N * C * 3 * C + N * C * C + 2 * N * C * hid  # qkv, proj, MLP
        + 2 * heads * d * d * N  # XCA: q^ k^T (d x N x d) and attn @ v
        + 2 * N * C * 9 + 2 * N * C  # LPI: two depthwise 3x3 convs, BN
        + 3 * 5 * N * C)  # three LayerNorms
    total += depth * per_block
    if cls_token:
        T = N + 1
        per_ca = (
            C * C + T * C * 2 * C + C * C  # q (class token), k and v, proj
            + 2 * hid * C  # MLP on the class token
            + 2 * heads * d * T  # q k^T and attn @ v (one query)
            + 5 * T * C + 5 * (T if tokens_norm else 1) * C)  # norm1, norm2
        total += 2 * per_ca + 5 * T * C  # two CA blocks, final norm
    return total


@pytest.mark.parametrize('size', [(32, 48), (40, 72)])
def test_tiny_classifier_equals_hand_count(size):
    model = XCiT(TINY_ARCH)
    r = get_model_complexity(model, (3, *size))
    C, depth, heads = (TINY_ARCH[k] for k in ('embed_dims', 'depth',
                                              'num_heads'))
    assert r['flops'] == xcit_flops_by_hand(C, depth, heads, *size)
    N = (-(-size[0] // 16)) * (-(-size[1] // 16))
    d = C // heads
    assert r['attention_flops'] == depth * 2 * heads * d * d * N + \
        2 * 2 * heads * d * (N + 1)
    assert r['params'] == sum(p.numel() for p in model.parameters())


def test_tiny_featmap_and_reference_impl_equal_hand_count():
    arch = dict(embed_dims=64, depth=3, num_heads=4, tokens_norm=False)
    for impl in ('fast', 'reference'):
        model = XCiT(arch, out_type='featmap', out_indices=[1], impl=impl)
        r = get_model_complexity(model, (3, 64, 64))
        # blocks after the last out_index do not run
        assert r['flops'] == xcit_flops_by_hand(64, 2, 4, 64, 64,
                                                cls_token=False)
    model = XCiT(arch)
    r = get_model_complexity(model, (3, 64, 64))
    assert r['flops'] == xcit_flops_by_hand(64, 3, 4, 64, 64,
                                            tokens_norm=False)


def test_s12_p16_matches_published_figure():
    """The paper gives 4.8 GFLOPs (rounded to 0.1, multiply-adds) for
    XCiT-S12/16 at 224: ours must round to it (|x - 4.8| <= 0.05)."""
    r = get_model_complexity(XCiT('s12'), (3, 224, 224))
    assert r['flops'] == xcit_flops_by_hand(384, 12, 8, 224, 224)
    assert abs(r['flops'] / 1e9 - 4.8) <= 0.05
    assert r['params'] == 25_868_304  # backbone; + 385,000 for the head


class _AttentionOps(nn.Module):

    def forward(self, y, x, q, k, v):
        return torch.baddbmm(y, x, x.transpose(1, 2)), \
            F.scaled_dot_product_attention(q, k, v)


def test_extra_handles_baddbmm_and_sdpa():
    x = torch.randn(2, 5, 8)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), \
        torch.randn(2, 3, 7, 4)
    r = get_model_complexity(_AttentionOps(),
                             inputs=(torch.randn(2, 5, 5), x, q, k, v))
    # baddbmm(y, x (2, 5, 8), x^T (2, 8, 5)): 2 * 5 * 8 * 5
    assert r['by_operator']['baddbmm'] == 2 * 5 * 8 * 5
    assert r['by_operator']['scaled_dot_product_attention'] == \
        2 * 3 * 5 * 7 * (8 + 4)
    assert r['attention_flops'] == r['flops']
