"""The building blocks of XCiT (arXiv 2106.09681).

Parameter names follow the official checkpoints (``patch_embed.proj.0.0``,
``blocks.i.local_mp.bn``, ``cls_attn_blocks.j.attn.qkv`` ...), except that the
positional encoder is called ``pos_embed`` (as in timm and mmpretrain) instead
of the official ``pos_embeder``. The key mapping in
:mod:`xcit_mm.models.backbones.xcit_convert` reads both foreign layouts.

Shapes use B (batch), N (tokens), C (channels), h (heads), d = C / h
(channels per head), Hp x Wp (the patch grid).

Every block takes ``impl``: ``'fast'`` (default) or ``'reference'``. Both
compute the same function with the same parameters; ``'fast'`` uses fewer
kernels and copies (see :mod:`xcit_mm.models.layers.fast_xca`), and
``'reference'`` is the direct transcription of the official code, kept for
parity tests and as the path that returns attention maps.
"""
import math
from collections import OrderedDict
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch.utils.checkpoint import checkpoint

from xcit_mm.models.utils.arch import check_patch_size

from .fast_xca import is_compiling, xca_fast
from .mlp import Mlp

#: LayerNorm epsilon used everywhere in XCiT.
LN_EPS = 1e-6

#: Implementations of the blocks (same numbers, see the module docstring).
IMPLS = ('fast', 'reference')


def check_impl(impl: str) -> str:
    """Return ``impl`` if it is a valid block implementation, else raise."""
    if impl not in IMPLS:
        raise ValueError(f'XCiT impl must be one of {IMPLS}, got {impl!r}.')
    return impl


def _norm(norm_cfg: dict, channels: int) -> nn.Module:
    """Build a norm layer from an mmcv config (BN by default)."""
    return build_norm_layer(norm_cfg, channels)[1]


def act_channels_last(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply an element-wise module to an NCHW map stored channels-last.

    On the CPU, PyTorch's GELU takes a scalar kernel for channels-last
    strides (about 3x slower here for the patch embedding's maps, and not
    bit-identical to the NCHW result); the NHWC view of the same memory is
    contiguous and takes the vectorised kernel, which gives exactly the NCHW
    numbers. A view in and a view out: no copy.
    """
    if (x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)):
        return act(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return act(x)


def channels_last_weights_(module: nn.Module) -> nn.Module:
    """Store the weights of the convs in ``module`` channels-last, in place.

    A conv whose input is channels-last computes its weight gradient
    channels-last. When the weight is stored otherwise, autograd copies each
    gradient into the weight's layout, and where the two layouts differ only
    in the stride of a size-1 dimension (a depthwise ``(C, 1, k, k)`` weight,
    a 1-channel input's first conv) it keeps the gradient as it is, so that
    DDP's gradient buckets, laid out like the weights, do not match it:
    torch warns "Grad strides do not match bucket view strides" and copies.
    Weights stored with the strides the gradients come in avoid both. The
    values, the state dict's names and shapes, and loading are unchanged.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            w = m.weight.data
            m.weight.data = torch.empty_like(
                w, memory_format=torch.channels_last).copy_(w)
    return module


class PositionalEncodingFourier(nn.Module):
    """Fourier positional encoding, computed for any patch grid.

    The row and column indices (1-based) are normalised by their last value
    (+eps) and scaled to [0, 2pi]; sin and cos of ``hidden_dim`` frequencies
    are interleaved, y and x features concatenated (2 * hidden_dim channels)
    and projected to ``dim`` channels by a 1x1 conv.

    Args:
        dim (int): Output channels.
        hidden_dim (int): Frequencies per axis. Defaults to 32.
        temperature (float): Frequency base. Defaults to 10000.
    """

    #: How many (H, W, device) Fourier feature maps to keep.
    cache_size = 8

    def __init__(self, dim: int, hidden_dim: int = 32,
                 temperature: float = 10000.):
        super().__init__()
        self.token_projection = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)
        self.hidden_dim = hidden_dim
        self.temperature = temperature
        self.scale = 2 * math.pi
        self.eps = 1e-6
        # parameter-free features by (H, W, device); not part of state_dict
        self._cache: 'OrderedDict[tuple, torch.Tensor]' = OrderedDict()

    def cached_fourier_features(self, H: int, W: int,
                                device: torch.device) -> torch.Tensor:
        """:meth:`fourier_features`, memoised per (H, W, device).

        The features hold no parameter, so a grid size seen before costs a
        dict lookup instead of ~15 small kernels. Under ``torch.compile`` or
        tracing they are recomputed (the compiler folds them).
        """
        if is_compiling() or torch.jit.is_tracing():
            return self.fourier_features(H, W, device)
        key = (H, W, device)
        pos = self._cache.get(key)
        # a tensor made under inference_mode cannot be saved for backward
        if pos is None or (pos.is_inference()
                           and not torch.is_inference_mode_enabled()):
            pos = self.fourier_features(H, W, device)
            self._cache[key] = pos
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return pos

    def fourier_features(self, H: int, W: int,
                         device: torch.device) -> torch.Tensor:
        """The parameter-free part: (1, 2 * hidden_dim, H, W) in fp32."""
        y = torch.arange(1, H + 1, device=device, dtype=torch.float32)
        x = torch.arange(1, W + 1, device=device, dtype=torch.float32)
        y = y / (y[-1] + self.eps) * self.scale  # (H,)
        x = x / (x[-1] + self.eps) * self.scale  # (W,)
        dim_t = torch.arange(self.hidden_dim, device=device,
                             dtype=torch.float32)
        dim_t = self.temperature**(
            2 * torch.div(dim_t, 2, rounding_mode='floor') / self.hidden_dim)
        pos_y = y[:, None] / dim_t  # (H, hidden)
        pos_x = x[:, None] / dim_t  # (W, hidden)
        # interleave sin (even frequencies) and cos (odd frequencies)
        pos_y = torch.stack([pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()],
                            dim=2).flatten(1)  # (H, hidden)
        pos_x = torch.stack([pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()],
                            dim=2).flatten(1)  # (W, hidden)
        pos = torch.cat([
            pos_y[:, None, :].expand(H, W, -1),
            pos_x[None, :, :].expand(H, W, -1)
        ], dim=2)  # (H, W, 2 * hidden)
        return pos.permute(2, 0, 1).unsqueeze(0)  # (1, 2 * hidden, H, W)

    def forward(self, H: int, W: int) -> torch.Tensor:
        """Return the encoding as (1, H * W, dim) tokens."""
        weight = self.token_projection.weight
        pos = self.cached_fourier_features(H, W,
                                           weight.device).to(weight.dtype)
        pos = self.token_projection(pos)  # (1, dim, H, W)
        return pos.flatten(2).transpose(1, 2)  # (1, H * W, dim)


class ConvPatchEmbed(nn.Module):
    """Patch embedding by a stack of 3x3 stride-2 convs (no bias) with BN.

    p16: 3 -> C/8 -> C/4 -> C/2 -> C; p8: 3 -> C/4 -> C/2 -> C, with GELU
    between the conv+norm pairs and none after the last.

    With ``impl='fast'`` the convs run in channels-last memory format (faster
    with oneDNN on the CPU and with cuDNN at reduced precision), their
    weights are stored channels-last (:func:`channels_last_weights_`), and
    the (B, N, C) tokens are then a view of the last conv's output, not a
    copy.

    Args:
        embed_dims (int): Output channels C.
        patch_size (int): 16 or 8.
        in_channels (int): Input channels. Defaults to 3.
        norm_cfg (dict): Norm after each conv. Defaults to ``dict(type='BN')``.
        impl (str): ``'fast'`` or ``'reference'``. Defaults to ``'fast'``.
    """

    def __init__(self, embed_dims: int, patch_size: int = 16,
                 in_channels: int = 3, norm_cfg: dict = dict(type='BN'),
                 impl: str = 'fast'):
        super().__init__()
        self.impl = check_impl(impl)
        check_patch_size(patch_size)
        num_convs = int(math.log2(patch_size))  # 4 for p16, 3 for p8
        dims = [in_channels] + [
            embed_dims // 2**(num_convs - 1 - i) for i in range(num_convs)
        ]
        layers = []
        for i in range(num_convs):
            if i > 0:
                layers.append(nn.GELU())
            layers.append(
                nn.Sequential(
                    nn.Conv2d(dims[i], dims[i + 1], 3, stride=2, padding=1,
                              bias=False), _norm(norm_cfg, dims[i + 1])))
        self.proj = nn.Sequential(*layers)
        if self.impl == 'fast':  # the convs run channels-last
            channels_last_weights_(self.proj)
        self.patch_size = patch_size

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        if self.impl == 'fast':
            x = x.contiguous(memory_format=torch.channels_last)
            for layer in self.proj:
                x = act_channels_last(layer, x) if isinstance(
                    layer, nn.GELU) else layer(x)
        else:
            x = self.proj(x)  # (B, C, Hp, Wp)
        Hp, Wp = x.shape[2:]
        return x.flatten(2).transpose(1, 2), (Hp, Wp)  # (B, N, C)


class LPI(nn.Module):
    """Local patch interaction: dw-conv 3x3 -> GELU -> norm -> dw-conv 3x3.

    The tokens are viewed as an NHWC map without a copy; the depthwise convs
    then run in channels-last memory format, with their weights stored
    channels-last (:func:`channels_last_weights_`). With ``impl='fast'`` the
    GELU
    runs on the contiguous NHWC view (see :func:`act_channels_last`).
    """

    def __init__(self, dim: int, norm_cfg: dict = dict(type='BN'),
                 impl: str = 'fast'):
        super().__init__()
        self.impl = check_impl(impl)
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.act = nn.GELU()
        self.bn = _norm(norm_cfg, dim)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        channels_last_weights_(self)  # the token map is a channels-last view

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        x = x.reshape(B, H, W, C).permute(0, 3, 1, 2)  # (B, C, H, W) view
        x = self.conv1(x)
        x = act_channels_last(self.act, x) if self.impl == 'fast' else \
            self.act(x)
        x = self.conv2(self.bn(x))
        return x.permute(0, 2, 3, 1).reshape(B, N, C)


def xca_attention(q: torch.Tensor, k: torch.Tensor,
                  temperature: torch.Tensor) -> torch.Tensor:
    """The cross-covariance attention matrix softmax(q^ k^T * temperature).

    ``q`` and ``k`` are (B, h, d, N); the result is (B, h, d, d) in fp32. The
    L2 normalisation along N, the N-long dot products and the softmax run in
    fp32 even under autocast, so 16k-token inputs cannot overflow in fp16.
    """
    with torch.autocast(device_type=q.device.type, enabled=False):
        q = F.normalize(q.float(), dim=-1)
        k = F.normalize(k.float(), dim=-1)
        attn = (q @ k.transpose(-2, -1)) * temperature.float()  # (B,h,d,d)
        return attn.softmax(dim=-1)


class XCA(nn.Module):
    """Cross-covariance attention: attention across channels, not tokens.

    Args:
        dim (int): Channels C.
        num_heads (int): Heads h; each attends over d = C / h channels.
        qkv_bias (bool): Bias in the fused qkv projection. Defaults to True.
        attn_drop (float): Dropout on the attention matrix. Defaults to 0.
        proj_drop (float): Dropout after ``proj``. Defaults to 0.
        impl (str): ``'fast'`` (see :mod:`xcit_mm.models.layers.fast_xca`)
            or ``'reference'`` (:func:`xca_attention`). The fast path falls
            back to the reference one for ``return_attn=True`` and for
            attention dropout in training. Defaults to ``'fast'``.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.,
                 impl: str = 'fast'):
        super().__init__()
        self.impl = check_impl(impl)
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor,
                return_attn: bool = False) -> torch.Tensor:
        if (self.impl == 'fast' and not return_attn
                and not (self.training and self.attn_drop.p > 0)):
            out = xca_fast(self.qkv(x), self.temperature, self.num_heads)
            return self.proj_drop(self.proj(out))  # (B, N, C)
        B, N, C = x.shape
        h = self.num_heads
        qkv = self.qkv(x).reshape(B, N, 3, h, C // h)
        qkv = qkv.permute(2, 0, 3, 4, 1)  # (3, B, h, d, N)
        q, k, v = qkv.unbind(0)
        attn = xca_attention(q, k, self.temperature)  # (B, h, d, d), fp32
        out = self.attn_drop(attn).to(v.dtype) @ v  # (B, h, d, N)
        out = out.permute(0, 3, 1, 2).reshape(B, N, C)
        out = self.proj_drop(self.proj(out))
        return (out, attn) if return_attn else out


class ClassAttention(nn.Module):
    """Class attention (CaiT): only the class token queries all tokens.

    The weights keep the official fused ``qkv`` layout, but queries are
    computed for the class token alone.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor,
                return_attn: bool = False) -> torch.Tensor:
        """Return the new class token (B, 1, C) (and (B, h, N) attention)."""
        B, N, C = x.shape
        h = self.num_heads
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(x[:, :1], w[:C], None if b is None else b[:C])
        kv = F.linear(x, w[C:], None if b is None else b[C:])
        q = q.reshape(B, h, 1, C // h)  # (B, h, 1, d)
        k, v = kv.reshape(B, N, 2, h, C // h).permute(2, 0, 3, 1, 4)
        attn = ((q * self.scale) @ k.transpose(-2, -1))  # (B, h, 1, N)
        attn = attn.softmax(dim=-1)
        cls = self.attn_drop(attn) @ v  # (B, h, 1, d)
        cls = self.proj_drop(self.proj(cls.transpose(1, 2).reshape(B, 1, C)))
        return (cls, attn[:, :, 0]) if return_attn else cls


class XCABlock(nn.Module):
    """XCA block: x += g1*XCA(n1 x); x += g3*LPI(n3 x); x += g2*MLP(n2 x).

    The names norm3 and gamma3 belong to the LPI, which runs second, as in the
    official weights. Drop path is the same rate in every block.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.,
                 qkv_bias: bool = True, drop: float = 0.,
                 attn_drop: float = 0., drop_path: float = 0.,
                 eta: float = 1., norm_cfg: dict = dict(type='BN'),
                 impl: str = 'fast'):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = XCA(dim, num_heads, qkv_bias, attn_drop, drop, impl)
        self.norm3 = nn.LayerNorm(dim, eps=LN_EPS)
        self.local_mp = LPI(dim, norm_cfg, impl)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = (DropPath(drop_path) if drop_path > 0
                          else nn.Identity())
        self.gamma1 = nn.Parameter(eta * torch.ones(dim))
        self.gamma3 = nn.Parameter(eta * torch.ones(dim))
        self.gamma2 = nn.Parameter(eta * torch.ones(dim))

    def _attn_part(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.gamma1 * self.attn(self.norm1(x)))

    def _lpi_part(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        return x + self.drop_path(
            self.gamma3 * self.local_mp(self.norm3(x), H, W))

    def _mlp_part(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.gamma2 * self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor, H: int, W: int,
                with_cp: bool = False) -> torch.Tensor:
        """With ``with_cp``, the attention and MLP parts are recomputed in
        the backward pass (activation checkpointing), the LPI too unless
        its norm keeps running statistics: a recomputed BN would update
        them a second time, and a SyncBN would all-reduce inside the
        backward pass. The LPI's activations are a small part of the
        block's (depth-wise convolutions, C channels)."""
        if not with_cp:
            return self._mlp_part(self._lpi_part(self._attn_part(x), H, W))
        x = checkpoint(self._attn_part, x, use_reentrant=False)
        if _has_running_stats(self.local_mp):
            x = self._lpi_part(x, H, W)
        else:
            x = checkpoint(self._lpi_part, x, H, W, use_reentrant=False)
        return checkpoint(self._mlp_part, x, use_reentrant=False)


def _has_running_stats(module: nn.Module) -> bool:
    """Whether a sub-module keeps statistics that its forward updates."""
    return any(name.endswith('running_mean')
               for name, _ in module.named_buffers())


class ClassAttentionBlock(nn.Module):
    """Class-attention block, with the two official quirks kept exactly.

    1. The attention output replaces only the class token; the patch tokens
       receive ``gamma1 * norm1(x)``: x = x + g1 * cat[CA(n1 x), n1(x)[1:]].
    2. With ``tokens_norm`` all tokens pass through norm2, otherwise only the
       class token does. The MLP updates the class token only, and the final
       residual adds the (normed) patch tokens to themselves. Both feed the
       keys and values of the next class-attention block.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.,
                 qkv_bias: bool = True, drop: float = 0.,
                 attn_drop: float = 0., eta: Optional[float] = 1.,
                 tokens_norm: bool = False, impl: str = 'fast'):
        super().__init__()
        self.impl = check_impl(impl)
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = ClassAttention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.gamma1 = nn.Parameter(eta * torch.ones(dim))
        self.gamma2 = nn.Parameter(eta * torch.ones(dim))
        self.tokens_norm = tokens_norm

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        if self.impl == 'fast' and not return_attn:
            return self._forward_fast(x)
        x_norm1 = self.norm1(x)
        cls, attn = self.attn(x_norm1, return_attn=True)
        x = x + self.gamma1 * torch.cat([cls, x_norm1[:, 1:]], dim=1)
        if self.tokens_norm:
            x = self.norm2(x)
        else:
            x = torch.cat([self.norm2(x[:, :1]), x[:, 1:]], dim=1)
        cls = x[:, :1] + self.gamma2 * self.mlp(x[:, :1])
        x = torch.cat([cls, 2 * x[:, 1:]], dim=1)  # patch tokens: x + x
        return (x, attn) if return_attn else x

    def _forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        """The same as the reference, with the class token and the patch
        tokens kept apart until the end (one ``cat`` instead of three; the
        norms act per token, so splitting them changes nothing)."""
        x_norm1 = self.norm1(x)
        cls = x[:, :1] + self.gamma1 * self.attn(x_norm1)  # (B, 1, C)
        patches = x[:, 1:] + self.gamma1 * x_norm1[:, 1:]  # (B, N - 1, C)
        cls = self.norm2(cls)
        if self.tokens_norm:
            patches = self.norm2(patches)
        cls = cls + self.gamma2 * self.mlp(cls)
        return torch.cat([cls, 2 * patches], dim=1)  # patch tokens: x + x
