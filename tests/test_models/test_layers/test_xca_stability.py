"""Cross-covariance attention at 16k tokens (the Mask R-CNN p8 regime, e.g.
a 1024x1024 image at patch 8) in half precision.

XCA normalises q and k along the *token* axis, so their norms grow with
sqrt(N): at 16384 tokens a channel whose activations have an RMS of 600
has an L2 norm of 600 * 128 = 76800, above fp16's largest value (65504).
``xca_attention`` runs the normalisation, the N-long dot products and the
softmax in fp32 whatever the input dtype; the official formulation run in
fp16 overflows to an infinite norm and silently zeroes that channel.
"""
import pytest
import torch
import torch.nn.functional as F

from xcit_mm.models.layers.xcit_layers import XCA, xca_attention

N = 16384  # tokens
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def naive_xca_attention(q, k, temperature):
    """The official XCiT code: normalise and multiply in the input dtype."""
    q = F.normalize(q, dim=-1)
    k = F.normalize(k, dim=-1)
    attn = (q @ k.transpose(-2, -1)) * temperature
    return attn.softmax(dim=-1)


def _qk(device, h=4, d=16, big=600.):
    """q, k (1, h, d, N): k follows q (a peaked attention), and channel 0
    carries large activations."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, h, d, N, generator=g)
    k = q + 0.3 * torch.randn(1, h, d, N, generator=g)
    q[:, :, 0] *= big
    k[:, :, 0] *= big
    return q.to(device), k.to(device)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_xca_16k_tokens_autocast_forward_backward_finite(device, dtype):
    torch.manual_seed(0)
    C, h = 64, 4
    m = XCA(C, h).to(device)
    with torch.no_grad():
        m.temperature.fill_(3.)
    x = (20 * torch.randn(1, N, C, device=device)).requires_grad_()
    with torch.autocast(device, dtype=dtype):
        out, attn = m(x, return_attn=True)
        loss = out.float().square().mean()
    loss.backward()
    assert attn.dtype == torch.float32
    assert torch.isfinite(out).all() and torch.isfinite(attn).all()
    for name, p in m.named_parameters():
        assert torch.isfinite(p.grad).all(), name
    assert torch.isfinite(x.grad).all()
    # and it is the fp32 attention, up to the half-precision projections
    ref = m(x.detach(), return_attn=True)[1]
    assert (attn - ref).abs().max() < 0.05


@pytest.mark.parametrize('device', DEVICES)
def test_fp32_normalisation_is_what_prevents_fp16_overflow(device):
    q, k = _qk(device)
    temperature = torch.full((4, 1, 1), 10., device=device)
    ref = xca_attention(q.double(), k.double(), temperature.double())
    q16 = q.half().requires_grad_()
    k16 = k.half().requires_grad_()

    # the official formulation in fp16: the norm of channel 0 overflows ...
    assert torch.isinf(q16.norm(dim=-1)).any()
    naive = naive_xca_attention(q16, k16, temperature.half())
    # ... so that channel is divided by inf: its attention row becomes
    # uniform instead of peaked on itself
    assert (naive[..., 0, :].double() - ref[..., 0, :]).abs().max() > 0.5

    ours = xca_attention(q16, k16, temperature)
    assert ours.dtype == torch.float32 and torch.isfinite(ours).all()
    assert (ours.double() - ref).abs().max() < 1e-3
    (ours * torch.randn_like(ours)).sum().backward()
    assert torch.isfinite(q16.grad).all() and torch.isfinite(k16.grad).all()
