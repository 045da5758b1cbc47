"""The building blocks of CrossFormer and CrossFormer++ (arXiv 2108.00154,
2303.06908), and the geometry of their dynamic position bias.

- :class:`CrossScaleEmbedding` and :class:`CrossScaleMerging`: stride-4 and
  stride-2 convolutions of several kernels, concatenated;
- :class:`DynamicPosBias` (DPB): an MLP from a relative offset to one
  attention bias per head, evaluated on :func:`dpb_offsets` and gathered
  with :func:`dpb_relative_index` (the official checkpoints store these two
  as buffers, which the converter checks against these functions);
- :class:`LSDAttention`, :func:`group_tokens` / :func:`ungroup_tokens` and
  :class:`CrossFormerBlock`: short- and long-distance attention in groups;
- :class:`CrossFormerStage`: the official ``layers.i`` layout.

Parameter names follow the official checkpoints. Shapes: B (batch), H x W
(the token grid of a stage), C (channels), N (tokens in a group), nG
(groups per image). Tokens travel between layers as (B, H, W, C) maps.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath

from .mlp import Mlp

#: Kernels of the cross-scale embedding (stride 4) and merging (stride 2).
EMBED_KERNELS = (4, 8, 16, 32)
MERGE_KERNELS = (2, 4)
#: What the official code adds to the attention logits of padded keys.
MASK_VALUE = -1e6
#: LDA layouts, see :class:`~xcit_mm.models.CrossFormer` (``lda_mode``).
LDA_MODES = ('group', 'interval')


def dpb_offsets(gh: int, gw: int,
                device: Optional[torch.device] = None) -> torch.Tensor:
    """All relative offsets (dy, dx) of a gh x gw group, row-major:
    ((2gh-1)(2gw-1), 2)."""
    dy = torch.arange(1 - gh, gh, device=device)
    dx = torch.arange(1 - gw, gw, device=device)
    return torch.stack(torch.meshgrid(dy, dx, indexing='ij'),
                       -1).reshape(-1, 2).float()


def dpb_relative_index(gh: int, gw: int,
                       device: Optional[torch.device] = None) -> torch.Tensor:
    """(N, N) row of :func:`dpb_offsets` for query i, key j: the offset
    ``pos(i) - pos(j)`` in group coordinates."""
    ys, xs = torch.meshgrid(torch.arange(gh, device=device),
                            torch.arange(gw, device=device),
                            indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + gh - 1
    dx = xs[:, None] - xs[None, :] + gw - 1
    return dy * (2 * gw - 1) + dx


class CrossScaleEmbedding(nn.Module):
    """Stage-1 embedding: stride-4 convs of several kernels, concatenated.

    Kernel k has padding (k - 4) / 2, so every conv gives the same
    H/4 x W/4 grid; the channels are split C/2, C/4, ..., with the last two
    kernels getting the same share (C/8, C/8 for four kernels).
    """

    def __init__(self, in_channels: int, embed_dims: int,
                 kernels: Sequence[int] = EMBED_KERNELS, stride: int = 4):
        super().__init__()
        n = len(kernels)
        dims = [embed_dims >> min(i + 1, n - 1) for i in range(n)]
        self.projs = nn.ModuleList(
            nn.Conv2d(in_channels, d, k, stride, (k - stride) // 2)
            for d, k in zip(dims, kernels))
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last input: on the CPU, PyTorch's default path for the
        # 32x32 kernel is ~170x slower at 896 px (16.5 s vs 0.1 s measured)
        x = x.contiguous(memory_format=torch.channels_last)
        x = torch.cat([proj(x) for proj in self.projs], dim=1)
        return self.norm(x.permute(0, 2, 3, 1))  # (B, C, h, w) -> (B, h, w, C)


class CrossScaleMerging(nn.Module):
    """Between stages: LayerNorm, then stride-2 convs of kernels 2 and 4
    (padding 0 and 1), concatenated to twice the channels. An odd side is
    zero-padded at the bottom / right first (the official code requires even
    sides)."""

    def __init__(self, dim: int, kernels: Sequence[int] = MERGE_KERNELS,
                 stride: int = 2):
        super().__init__()
        n = len(kernels)
        dims = [(2 * dim) >> min(i + 1, n - 1) for i in range(n)]
        self.norm = nn.LayerNorm(dim)
        self.reductions = nn.ModuleList(
            nn.Conv2d(dim, d, k, stride, (k - stride) // 2)
            for d, k in zip(dims, kernels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1:3]
        x = self.norm(x).permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        if H % 2 or W % 2:
            x = F.pad(x, (0, W % 2, 0, H % 2))
        x = torch.cat([red(x) for red in self.reductions], dim=1)
        return x.permute(0, 2, 3, 1)  # (B, 2C, H/2, W/2) -> (B, H/2, W/2, 2C)


class DynamicPosBias(nn.Module):
    """DPB: an MLP from a 2-d relative offset to one attention bias per head.

    ``Linear(2, P)``, then twice ``[LayerNorm, ReLU, Linear(P, P)]``, then
    ``[LayerNorm, ReLU, Linear(P, heads)]``. Evaluated on the (2Gh - 1) x
    (2Gw - 1) offsets of a Gh x Gw group and gathered into an (N, N) bias, so
    any group shape works.
    """

    def __init__(self, pos_dims: int, num_heads: int):
        super().__init__()
        self.pos_proj = nn.Linear(2, pos_dims)

        def layer(out: int) -> nn.Sequential:
            return nn.Sequential(nn.LayerNorm(pos_dims), nn.ReLU(),
                                 nn.Linear(pos_dims, out))

        self.pos1 = layer(pos_dims)
        self.pos2 = layer(pos_dims)
        self.pos3 = layer(num_heads)

    #: All relative offsets (dy, dx) of a gh x gw group.
    offsets = staticmethod(dpb_offsets)
    #: (N, N) row of :meth:`offsets` for query i, key j.
    relative_index = staticmethod(dpb_relative_index)

    def mlp(self, offsets: torch.Tensor) -> torch.Tensor:
        return self.pos3(self.pos2(self.pos1(self.pos_proj(offsets))))

    def forward(self, gh: int, gw: int) -> torch.Tensor:
        """Bias of a gh x gw group: (heads, N, N)."""
        device = self.pos_proj.weight.device
        table = self.mlp(self.offsets(gh, gw, device))  # (#offsets, heads)
        index = self.relative_index(gh, gw, device)  # (N, N)
        return table[index.flatten()].view(gh * gw, gh * gw, -1).permute(
            2, 0, 1)


class LSDAttention(nn.Module):
    """Multi-head self-attention inside groups, with DPB and key masking."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.pos = DynamicPosBias(dim // 16, num_heads)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, group_hw: Tuple[int, int],
                key_mask: Optional[torch.Tensor] = None,
                return_attn: bool = False):
        """
        Args:
            x (Tensor): (B * nG, N, C) grouped tokens, images outermost.
            group_hw (tuple): (Gh, Gw), the group grid, N = Gh * Gw.
            key_mask (Tensor, optional): (nG, N) bool, True at padded
                tokens, which no query may attend to.
            return_attn (bool): Also return the (B * nG, heads, N, N)
                attention weights.
        """
        BG, N, C = x.shape
        h = self.num_heads
        # (BG, N, 3C) -> (3, BG, h, N, C/h)
        qkv = self.qkv(x).reshape(BG, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (BG, h, N, N)
        attn = attn + self.pos(*group_hw).unsqueeze(0)
        if key_mask is not None:
            nG = key_mask.shape[0]
            bias = key_mask.float() * MASK_VALUE  # fp32 under autocast too
            # (B, nG, h, N, N) + (1, nG, 1, 1, N)
            attn = (attn.view(-1, nG, h, N, N) +
                    bias[None, :, None, None, :]).view(BG, h, N, N)
        attn = attn.softmax(dim=-1)
        weights = attn
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(BG, N, C)
        x = self.proj_drop(self.proj(x))
        return (x, weights) if return_attn else x


def group_tokens(x: torch.Tensor, gh: int, gw: int,
                 interval: int) -> torch.Tensor:
    """(B, Hp, Wp, C) -> (B * nG, gh * gw, C).

    The map is cut into windows of (gh * I) x (gw * I) tokens; in each
    window the tokens at the same position modulo I form one group of
    gh x gw tokens. I = 1 gives SDA's adjacent groups.
    """
    B, Hp, Wp, C = x.shape
    I = interval
    Rh, Rw = Hp // (gh * I), Wp // (gw * I)
    # (B, Rh, gh, I, Rw, gw, I, C) -> (B, Rh, Rw, I, I, gh, gw, C)
    x = x.reshape(B, Rh, gh, I, Rw, gw, I, C).permute(0, 1, 4, 3, 6, 2, 5, 7)
    return x.reshape(-1, gh * gw, C)


def ungroup_tokens(x: torch.Tensor, B: int, Hp: int, Wp: int, gh: int,
                   gw: int, interval: int) -> torch.Tensor:
    """Inverse of :func:`group_tokens`: (B * nG, N, C) -> (B, Hp, Wp, C)."""
    I = interval
    Rh, Rw = Hp // (gh * I), Wp // (gw * I)
    # (B, Rh, Rw, I, I, gh, gw, C) -> (B, Rh, gh, I, Rw, gw, I, C)
    x = x.reshape(B, Rh, Rw, I, I, gh, gw, -1).permute(0, 1, 5, 3, 2, 6, 4, 7)
    return x.reshape(B, Hp, Wp, -1)


class CrossFormerBlock(nn.Module):
    """SDA or LDA attention, MLP, and optionally CrossFormer++'s activation
    cooling layer (depthwise 3x3 conv + LayerNorm on the block's output, no
    residual, as in the official code).

    Args:
        dim (int): Channels.
        num_heads (int): Attention heads.
        group_size (int): G.
        interval (int): I, the LDA sampling step.
        lda (bool): Long-distance (True) or short-distance (False).
        lda_mode (str): ``'group'`` or ``'interval'`` (see
            :class:`~xcit_mm.models.CrossFormer`).
        mlp_ratio (float): Hidden width of the MLP over ``dim``.
        qkv_bias (bool): Bias in the qkv projection.
        drop (float): Dropout after the projections.
        attn_drop (float): Dropout on the attention weights.
        drop_path (float): Stochastic depth of both residual branches.
        acl (bool): Add the activation cooling layer.
    """

    def __init__(self, dim: int, num_heads: int, group_size: int,
                 interval: int, lda: bool, lda_mode: str = 'group',
                 mlp_ratio: float = 4., qkv_bias: bool = True,
                 drop: float = 0., attn_drop: float = 0.,
                 drop_path: float = 0., acl: bool = False):
        super().__init__()
        self.group_size = group_size
        self.interval = interval
        self.lda = lda
        self.lda_mode = lda_mode
        self.norm1 = nn.LayerNorm(dim)
        self.attn = LSDAttention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.acl = acl
        if acl:
            self.ex_conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
            self.ex_ln = nn.LayerNorm(dim)

    def layout(self, H: int, W: int) -> Tuple[int, int, int]:
        """(Gh, Gw, I) for an H x W map (I = 1 is SDA).

        A map whose short side is at most G gets SDA (official rule); its
        group is G' x G' with G' = max(H, W) (one group: the ``main`` code)
        or min(H, W) (``lda_mode='interval'``: the ``crossformer`` branch).
        """
        G = self.group_size
        if min(H, W) <= G:
            G = max(H, W) if self.lda_mode == 'group' else min(H, W)
            return G, G, 1
        if not self.lda:
            return G, G, 1
        I = self.interval
        if self.lda_mode == 'group':
            return G, G, I
        return math.ceil(H / I), math.ceil(W / I), I

    def attention(self, x: torch.Tensor, return_attn: bool = False):
        """LSDA on a normalised (B, H, W, C) map: pad, group, attend with
        the padded keys masked, ungroup, crop."""
        B, H, W, C = x.shape
        gh, gw, I = self.layout(H, W)
        ph, pw = (-H) % (gh * I), (-W) % (gw * I)
        key_mask = None
        if ph or pw:
            x = F.pad(x, (0, 0, 0, pw, 0, ph))  # zeros at bottom / right
            pad = torch.zeros(1, H + ph, W + pw, 1, dtype=torch.bool,
                              device=x.device)
            pad[:, H:] = True
            pad[:, :, W:] = True
            key_mask = group_tokens(pad, gh, gw, I)[..., 0]  # (nG, N)
        Hp, Wp = H + ph, W + pw
        out = self.attn(group_tokens(x, gh, gw, I), (gh, gw), key_mask,
                        return_attn)
        if return_attn:
            out, weights = out
        x = ungroup_tokens(out, B, Hp, Wp, gh, gw, I)[:, :H, :W]
        return (x, weights, (gh, gw, I)) if return_attn else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attention(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        if self.acl:
            x = self.ex_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            x = self.ex_ln(x)
        return x


class CrossFormerStage(nn.Module):
    """The blocks of one stage (SDA at even, LDA at odd positions) and the
    merging layer that ends it (the official ``layers.i`` layout)."""

    def __init__(self, dim: int, depth: int, num_heads: int, group_size: int,
                 interval: int, drop_path: Sequence[float], acl: bool,
                 downsample: bool, **block_kwargs):
        super().__init__()
        # CrossFormer++: a cooling layer after every 3rd block but the last
        self.blocks = nn.ModuleList(
            CrossFormerBlock(dim, num_heads, group_size, interval,
                             lda=bool(i % 2), drop_path=drop_path[i],
                             acl=acl and (i + 1) % 3 == 0 and i < depth - 1,
                             **block_kwargs) for i in range(depth))
        self.downsample = CrossScaleMerging(dim) if downsample else None


