"""The fast XCA path (``XCAFunction``, its hand-written backward) in fp16
autocast at 16k tokens with activations whose norms overflow fp16: forward
and backward stay finite and match the fp32 computation. (The stability
test asks for attention maps, which takes the reference path.) The same
check at S12 width runs on a GPU in tools/analysis_tools/gpu_check.py."""
import copy

import torch

from xcit_mm.models.layers import fast_xca
from xcit_mm.models.layers.xcit_layers import XCA

N = 16384  # tokens: 1024 x 1024 at patch 8


def _run(m, x, dtype):
    x = x.clone().requires_grad_()
    with torch.autocast('cpu', dtype=dtype, enabled=dtype != torch.float32):
        out = m(x)
    out.float().square().mean().backward()
    return out.float(), x.grad, m.temperature.grad, m.qkv.weight.grad


def test_fast_path_fp16_backward_at_16k_tokens():
    torch.manual_seed(0)
    fast = XCA(32, 2)
    assert fast.impl == 'fast'
    with torch.no_grad():
        fast.temperature.fill_(3.)
    ref = copy.deepcopy(fast)
    x = 20 * torch.randn(1, N, 32)
    x[..., 0] *= 30  # |q|, |k| along the tokens > 65504 for that channel
    calls = []
    backward = fast_xca.XCAFunction.backward

    def counting_backward(ctx, *grads):
        calls.append(1)
        return backward(ctx, *grads)

    fast_xca.XCAFunction.backward = staticmethod(counting_backward)
    try:
        got = _run(fast, x, torch.float16)
    finally:
        fast_xca.XCAFunction.backward = backward
    assert calls == [1]  # the fast path ran its own backward
    want = _run(ref, x, torch.float32)
    for name, a, b in zip(('out', 'x.grad', 'temperature.grad',
                           'qkv.weight.grad'), got, want):
        assert torch.isfinite(a).all(), name
        err = (a.double() - b.double()).norm() / b.double().norm()
        assert err < 2e-2, (name, err.item())
