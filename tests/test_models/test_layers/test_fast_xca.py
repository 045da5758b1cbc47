"""The fast XCA path (hand-written backward in eager, plain ops under
torch.compile / tracing) against the reference path: same outputs, same
gradients, fp32 attention under reduced precision. Runs on the CPU, and on
CUDA as well where it is available."""
import copy

import pytest
import torch
import torch.nn.functional as F

from tests.utils import TINY_ARCH, randomize_, relative_error
from xcit_mm.models import XCiT
from xcit_mm.models.layers import (
    XCA,
    PositionalEncodingFourier,
    XCAFunction,
    xca_fast,
    xca_ops,
)

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def reference_xca(qkv: torch.Tensor, temperature: torch.Tensor,
                  num_heads: int) -> torch.Tensor:
    """The official formula, written out independently of xcit_mm."""
    B, N, C3 = qkv.shape
    C = C3 // 3
    q, k, v = qkv.reshape(B, N, 3, num_heads, C // num_heads).permute(
        2, 0, 3, 4, 1)  # 3 x (B, h, d, N)
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = ((q @ k.transpose(-2, -1)) * temperature).softmax(dim=-1)
    return (attn @ v).permute(0, 3, 1, 2).reshape(B, N, C)


def _grads(fn, qkv, temperature, heads, grad_out):
    qkv = qkv.detach().clone().requires_grad_()
    temperature = temperature.detach().clone().requires_grad_()
    out = fn(qkv, temperature, heads)
    out.backward(grad_out)
    return out.detach(), qkv.grad, temperature.grad


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    qkv = torch.randn(2, 5, 3 * 8, dtype=torch.float64, generator=g)
    temperature = 0.5 + torch.rand(2, 1, 1, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(
        lambda a, t: XCAFunction.apply(a, t, 2),
        (qkv.requires_grad_(), temperature.requires_grad_()))


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('impl', ['function', 'ops'])
def test_fp32_matches_reference(device, impl):
    g = torch.Generator().manual_seed(1)
    B, N, h, d = 3, 50, 4, 16
    qkv = torch.randn(B, N, 3 * h * d, generator=g).to(device)
    temperature = (0.5 + torch.rand(h, 1, 1, generator=g)).to(device)
    grad_out = torch.randn(B, N, h * d, generator=g).to(device)
    fn = XCAFunction.apply if impl == 'function' else xca_ops
    got = _grads(fn, qkv, temperature, h, grad_out)
    ref = _grads(reference_xca, qkv, temperature, h, grad_out)
    for a, b, what in zip(got, ref, ('out', 'dqkv', 'dtemperature')):
        assert relative_error(a, b) < 1e-5, what


def test_zero_token_channel_like_reference():
    """A channel that is zero on every token has norm 0: F.normalize clamps
    it to eps, and the gradient through the norm is zero there."""
    g = torch.Generator().manual_seed(2)
    qkv = torch.randn(2, 9, 3 * 8, generator=g)
    qkv[:, :, 1] = 0  # q channel 1 of head 0
    qkv[:, :, 8 + 5] = 0  # k channel 5 of head 1
    temperature = 0.5 + torch.rand(2, 1, 1, generator=g)
    grad_out = torch.randn(2, 9, 8, generator=g)
    got = _grads(XCAFunction.apply, qkv, temperature, 2, grad_out)
    ref = _grads(reference_xca, qkv, temperature, 2, grad_out)
    for a, b in zip(got, ref):
        assert torch.isfinite(a).all()
        assert relative_error(a, b) < 1e-5


def test_fp16_inputs_keep_norms_in_fp32():
    """16k tokens of magnitude 300: sum of squares 1.5e9 overflows fp16
    (max 65504). The fast path computes norms and q^T k in fp32."""
    g = torch.Generator().manual_seed(3)
    qkv32 = 300 * torch.randn(1, 16384, 3 * 8, generator=g).sign()
    temperature = torch.ones(2, 1, 1)
    out = xca_fast(qkv32.half(), temperature, 2)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    expected = reference_xca(qkv32.half().float(), temperature, 2)
    assert relative_error(out.float(), expected) < 2e-3


@pytest.mark.parametrize('device', DEVICES)
def test_bf16_autocast_close_to_reference(device):
    torch.manual_seed(4)
    fast = randomize_(XCA(64, 4)).to(device)
    ref = copy.deepcopy(fast)
    ref.impl = 'reference'
    x = torch.randn(2, 30, 64, device=device)
    outs = []
    for m in (fast, ref):
        xi = x.clone().requires_grad_()
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            out = m(xi)
        out.float().pow(2).sum().backward()
        outs.append((out.float(), xi.grad, m.temperature.grad))
    for a, b in zip(*outs):
        assert relative_error(a, b) < 3e-2  # bf16 has 8 bits of mantissa


def _model_pair(seed=0, arch=TINY_ARCH, **kwargs):
    torch.manual_seed(seed)
    fast = randomize_(XCiT(arch, impl='fast', **kwargs), seed)
    ref = XCiT(arch, impl='reference', **kwargs)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('out_type', ['cls_token', 'featmap'])
def test_model_forward_backward_matches_reference(device, out_type):
    fast, ref = _model_pair(out_type=out_type, out_indices=[0, 1])
    x = torch.randn(2, 3, 48, 80, generator=torch.Generator().manual_seed(5))
    results = []
    for m in (fast, ref):
        m.to(device).train()
        outs = m(x.to(device))
        sum((o * o).mean() for o in outs).backward()
        results.append(
            ([o.detach() for o in outs],
             {n: p.grad for n, p in m.named_parameters()}))
    (out_f, grad_f), (out_r, grad_r) = results
    for a, b in zip(out_f, out_r):
        assert relative_error(a, b) < 1e-5
    assert grad_f.keys() == grad_r.keys()
    for name in grad_f:
        assert relative_error(grad_f[name], grad_r[name]) < 1e-4, name


@pytest.mark.parametrize(
    'rates',
    [dict(drop_path_rate=0.3),
     dict(drop_path_rate=0.3, attn_drop_rate=0.2)])
def test_stochastic_layers_consume_the_same_randomness(rates):
    """Drop path (fast XCA) and attention dropout (the fast model falls back
    to the reference XCA): the same random numbers, the same output."""
    fast, ref = _model_pair(**rates)
    x = torch.randn(2, 3, 32, 32)
    outs = []
    for m in (fast, ref):
        torch.manual_seed(7)
        outs.append(m.train()(x)[0])
    assert relative_error(outs[0], outs[1]) < 1e-5


def test_eval_and_attention_maps_unchanged():
    fast, ref = _model_pair()
    x = torch.randn(1, 3, 64, 48)
    with torch.inference_mode():
        assert relative_error(fast.eval()(x)[0], ref.eval()(x)[0]) < 1e-5
    with torch.no_grad():
        maps_f = fast.get_attention_maps(x)
        maps_r = ref.get_attention_maps(x)
    for i in maps_r['xca']:
        assert relative_error(maps_f['xca'][i], maps_r['xca'][i]) < 1e-5
    assert relative_error(maps_f['cls_attn'], maps_r['cls_attn']) < 1e-5


def test_compiles_as_one_graph():
    """torch.compile traces the fast model without graph breaks (the
    aot_eager backend checks tracing and autograd without C++ codegen)."""
    fast, ref = _model_pair(arch=dict(TINY_ARCH, depth=1))
    compiled = torch.compile(fast, backend='aot_eager', fullgraph=True)
    x = torch.randn(2, 3, 32, 48)
    out = compiled(x)[0]
    out.pow(2).sum().backward()
    ref(x)[0].pow(2).sum().backward()
    assert relative_error(out.detach(), ref(x)[0].detach()) < 1e-5
    w_f = fast.blocks[0].attn.qkv.weight.grad
    w_r = ref.blocks[0].attn.qkv.weight.grad
    assert relative_error(w_f, w_r) < 1e-4


def test_positional_encoding_cache():
    pe = PositionalEncodingFourier(16)
    a = pe(5, 7)
    assert (5, 7, torch.device('cpu')) in pe._cache
    assert torch.equal(a, pe(5, 7))
    assert torch.equal(pe.fourier_features(5, 7, torch.device('cpu')),
                       pe._cache[(5, 7, torch.device('cpu'))])
    for i in range(pe.cache_size + 3):  # bounded
        pe(1 + i, 2)
    assert len(pe._cache) == pe.cache_size
    # features cached under inference_mode must not break training later
    pe2 = PositionalEncodingFourier(16)
    with torch.inference_mode():
        pe2(4, 4)
    pe2(4, 4).sum().backward()
    assert pe2.token_projection.weight.grad is not None


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('in_channels', [1, 3])
def test_gradients_come_in_the_layout_of_their_weights(device, in_channels):
    """Every gradient has its parameter's strides, size-1 dimensions
    included: what DDP's gradient buckets are laid out by (otherwise torch
    warns "Grad strides do not match bucket view strides" and copies; the
    2-process run is in tests/test_tools/test_dist_train.py)."""
    torch.manual_seed(0)
    model = XCiT(arch=TINY_ARCH, patch_size=8, in_channels=in_channels)
    model.to(device).train()
    x = torch.randn(2, in_channels, 32, 32, device=device)
    model(x)[0].sum().backward()
    for name, p in model.named_parameters():
        assert p.grad.stride() == p.stride(), name
