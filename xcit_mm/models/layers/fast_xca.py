"""Fast cross-covariance attention (XCA), numerically the official one.

The official XCA L2-normalises q and k along the tokens, then takes
``softmax(q^ k^T * temperature)``. Normalising first materialises two more
(B, h, d, N) tensors and its backward costs about ten token-sized kernels.
This module uses the identity

    q^ k^T = diag(1 / |q|) (q k^T) diag(1 / |k|)

so the norms are two (B, h, d) reductions and the scaling is applied to the
small (d x d) Gram matrix instead of the (d x N) inputs. The L2 norms, the
Gram matrix and the softmax stay in fp32 under bf16/fp16 autocast (as in
:func:`xcit_mm.models.layers.xca_attention`); only ``attn @ v`` runs in the
input dtype, as it does in the reference.

Two implementations of that formula, with the same numbers:

- :class:`XCAFunction` (eager training): one layout copy in, one out, and a
  hand-written backward (two ``baddbmm`` and two ``bmm``, no token-sized
  temporaries besides the gradient itself). Checked against autograd of the
  reference with ``torch.autograd.gradcheck`` in the tests.
- :func:`xca_ops` (``torch.compile``, ``torch.jit.trace``): the same
  formula in plain differentiable ops, which inductor fuses with the
  neighbouring kernels and FLOP counters can see.

Shapes: B batch, N tokens, C channels, h heads, d = C / h.
"""
from typing import Tuple

import torch

#: ``F.normalize``'s default: x / max(|x|, eps).
NORM_EPS = 1e-12


def is_compiling() -> bool:
    """True while torch.compile (dynamo) traces the code."""
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'is_compiling'):
        return compiler.is_compiling()
    return False  # pragma: no cover (torch < 2.3)


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for fp16/bf16/fp32 inputs, fp64 for fp64 (gradcheck)."""
    return torch.promote_types(dtype, torch.float32)


def _split_heads(qkv: torch.Tensor, num_heads: int) -> Tuple[int, ...]:
    B, N, C3 = qkv.shape
    if C3 % (3 * num_heads):
        raise ValueError(f'XCA: qkv has {C3} channels, not a multiple of '
                         f'3 * num_heads = {3 * num_heads}.')
    C = C3 // 3
    return B, N, C, C // num_heads


def xca_ops(qkv: torch.Tensor, temperature: torch.Tensor,
            num_heads: int) -> torch.Tensor:
    """XCA from the fused qkv projection, in plain differentiable ops.

    Args:
        qkv (Tensor): (B, N, 3C), the output of the ``qkv`` Linear.
        temperature (Tensor): (h, 1, 1) per-head temperature.
        num_heads (int): h.

    Returns:
        Tensor: (B, N, C), the input of the ``proj`` Linear.
    """
    B, N, C, d = _split_heads(qkv, num_heads)
    # (B, N, 3C) -> (B, N, 3, h, d) -> 3 x (B, h, N, d) views
    q, k, v = qkv.view(B, N, 3, num_heads, d).permute(2, 0, 3, 1, 4).unbind(0)
    acc = _acc_dtype(qkv.dtype)
    with torch.autocast(device_type=qkv.device.type, enabled=False):
        q, k = q.to(acc), k.to(acc)
        rq = (q * q).sum(dim=-2).sqrt().clamp_min(NORM_EPS)  # (B, h, d)
        rk = (k * k).sum(dim=-2).sqrt().clamp_min(NORM_EPS)
        gram = q.transpose(-2, -1) @ k  # (B, h, d, d)
        cos = gram * (rq.reciprocal()[..., :, None] *
                      rk.reciprocal()[..., None, :])
        attn = (cos * temperature.to(acc)).softmax(dim=-1)
        out = v @ attn.to(v.dtype).transpose(-2, -1)  # (B, h, N, d)
    return out.transpose(1, 2).reshape(B, N, C)


class XCAFunction(torch.autograd.Function):
    """XCA from the fused qkv projection with a hand-written backward.

    ``forward(qkv (B, N, 3C), temperature (h, 1, 1), num_heads) -> (B, N,
    C)``. Saves the (3, B, h, N, d) head-major copy of qkv and three
    (B, h, d, d) / (B, h, d) tensors; no dropout on the attention (the
    caller falls back to the reference path when ``attn_drop > 0``).
    """

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, temperature: torch.Tensor,
                num_heads: int) -> torch.Tensor:
        B, N, C, d = _split_heads(qkv, num_heads)
        h = num_heads
        with torch.autocast(device_type=qkv.device.type, enabled=False):
            # (B, N, 3C) -> (3, B, h, N, d): q, k, v become contiguous
            t = qkv.view(B, N, 3, h, d).permute(2, 0, 3, 1, 4).contiguous()
            acc = _acc_dtype(t.dtype)
            qk = t[:2].to(acc)  # (2, B, h, N, d), a view when acc == dtype
            # L2 norms along the tokens; square-and-sum is about twice as
            # fast as linalg.vector_norm over a non-innermost dim on the CPU
            norms = (qk * qk).sum(dim=-2).sqrt()  # (2, B, h, d)
            r = norms.clamp_min(NORM_EPS).reciprocal()
            q = qk[0].view(B * h, N, d)
            k = qk[1].view(B * h, N, d)
            gram = torch.bmm(q.transpose(1, 2), k).view(B, h, d, d)
            cos = gram * (r[0][..., :, None] * r[1][..., None, :])
            attn = (cos * temperature.to(acc)).softmax(dim=-1)  # (B,h,d,d)
            v = t[2].view(B * h, N, d)
            out = torch.bmm(v, attn.to(t.dtype).view(B * h, d, d).transpose(
                1, 2))  # (B*h, N, d)
        ctx.save_for_backward(t, norms, cos, attn, temperature)
        ctx.num_heads = h
        # (B, h, N, d) -> (B, N, h, d) -> (B, N, C)
        return out.view(B, h, N, d).transpose(1, 2).reshape(B, N, C)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        t, norms, cos, attn, temperature = ctx.saved_tensors
        h = ctx.num_heads
        _, B, _, N, d = t.shape
        C = h * d
        acc = _acc_dtype(t.dtype)
        with torch.autocast(device_type=t.device.type, enabled=False):
            # (B, N, C) -> (B, h, N, d) -> (B*h, N, d)
            g = grad_out.to(t.dtype).view(B, N, h, d).transpose(1, 2)
            g = g.reshape(B * h, N, d)
            v = t[2].view(B * h, N, d)
            grad_t = torch.empty_like(t)
            # out = v @ attn^T  =>  dv = g @ attn,  dattn = g^T v
            torch.bmm(g, attn.to(t.dtype).view(B * h, d, d),
                      out=grad_t[2].view(B * h, N, d))
            d_attn = torch.bmm(g.transpose(1, 2), v).to(acc).view(B, h, d, d)
            # softmax backward
            d_logit = attn * (d_attn - (d_attn * attn).sum(-1, keepdim=True))
            grad_temp = (d_logit * cos).sum((0, 2, 3)).view_as(temperature)
            d_cos = d_logit * temperature.to(acc)
            r = norms.clamp_min(NORM_EPS).reciprocal()  # (2, B, h, d)
            d_gram = d_cos * (r[0][..., :, None] * r[1][..., None, :])
            # through the norms: d|q_i| = -sum_j d_cos_ij cos_ij / |q_i|,
            # dq_i += d|q_i| q_i / |q_i|; zero where the norm was clamped
            d_cc = d_cos * cos
            c = torch.stack([d_cc.sum(-1), d_cc.sum(-2)])  # (2, B, h, d)
            c = torch.where(norms < NORM_EPS, 0., -c * r * r)
            qk = t[:2].to(acc)
            q = qk[0].view(B * h, N, d)
            k = qk[1].view(B * h, N, d)
            d_gram = d_gram.view(B * h, d, d)
            # gram = q^T k  =>  dq = k @ d_gram^T,  dk = q @ d_gram
            dq_dk = [(q * c[0].view(B * h, 1, d), k, d_gram.transpose(1, 2)),
                     (k * c[1].view(B * h, 1, d), q, d_gram)]
            for i, args in enumerate(dq_dk):
                if acc == t.dtype:  # write straight into the gradient
                    torch.baddbmm(*args, out=grad_t[i].view(B * h, N, d))
                else:
                    grad_t[i].copy_(torch.baddbmm(*args).view(B, h, N, d))
        # (3, B, h, N, d) -> (B, N, 3, h, d) -> (B, N, 3C)
        grad_qkv = grad_t.permute(1, 3, 0, 2, 4).reshape(B, N, 3 * C)
        return grad_qkv, grad_temp.to(temperature.dtype), None


def xca_fast(qkv: torch.Tensor, temperature: torch.Tensor,
             num_heads: int) -> torch.Tensor:
    """XCA from the fused qkv projection: (B, N, 3C) -> (B, N, C).

    Uses :class:`XCAFunction` in eager mode (training or inference: its
    forward is also the faster one), and :func:`xca_ops` under
    ``torch.compile`` and ``torch.jit.trace`` (same numbers, see the module
    docstring).
    """
    if is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return xca_ops(qkv, temperature, num_heads)
    return XCAFunction.apply(qkv, temperature, num_heads)
