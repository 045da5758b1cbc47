"""CrossFormer and CrossFormer++ backbones (arXiv 2108.00154, 2303.06908).

A four-stage pyramid: a cross-scale embedding (stride-4 convs of kernels 4,
8, 16 and 32, concatenated), then per stage a run of blocks that alternate
short-distance attention (SDA: groups of G x G adjacent tokens) and
long-distance attention (LDA: groups of tokens sampled every I positions),
each with a dynamic position bias (DPB: an MLP from the relative offset to
one bias per head), and a cross-scale merging layer (stride-2 convs of
kernels 2 and 4) between stages. CrossFormer++ adds other group sizes and
intervals and an activation cooling layer (ACL) after every third block.

Parameter names follow the official checkpoints (``patch_embed.projs.k``,
``layers.i.blocks.j.attn.pos.pos1.0``, ``layers.i.downsample.reductions.k``,
``norm``), so converting them only drops buffers and renames the head
(:mod:`xcit_mm.models.utils.crossformer_convert`).

Shapes: B (batch), H x W (the token grid of a stage), C (channels), N
(tokens in a group), nG (groups per image). Tokens travel between layers as
(B, H, W, C) maps.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from xcit_mm.models.utils.arch import (normalize_out_indices,
                                       transformer_init_)
from xcit_mm.models.utils.crossformer_convert import (dpb_offsets,
                                                      dpb_relative_index,
                                                      load_pretrained_backbone)
from xcit_mm.registry import MODELS
from xcit_mm.utils.errors import ArchError, ConfigError, InputShapeError
from xcit_mm.utils.suggest import close_names

#: Kernels of the cross-scale embedding (stride 4) and merging (stride 2).
EMBED_KERNELS = (4, 8, 16, 32)
MERGE_KERNELS = (2, 4)
#: What the official code adds to the attention logits of padded keys.
MASK_VALUE = -1e6
#: LDA layouts, see :class:`CrossFormer` (``lda_mode``).
LDA_MODES = ('group', 'interval')

_V1 = dict(group_size=(7, 7, 7, 7), interval=(8, 4, 2, 1), acl=False)
_PP = dict(group_size=(4, 4, 14, 7), interval=(4, 2, 1, 1), acl=True)
_ARCHS = {
    'tiny': dict(embed_dims=64, depths=(1, 1, 8, 6),
                 num_heads=(2, 4, 8, 16), **_V1),
    'small': dict(embed_dims=96, depths=(2, 2, 6, 2),
                  num_heads=(3, 6, 12, 24), **_V1),
    'base': dict(embed_dims=96, depths=(2, 2, 18, 2),
                 num_heads=(3, 6, 12, 24), **_V1),
    'large': dict(embed_dims=128, depths=(2, 2, 18, 2),
                  num_heads=(4, 8, 16, 32), **_V1),
    'pp-small': dict(embed_dims=64, depths=(2, 2, 18, 2),
                     num_heads=(2, 4, 8, 16), **_PP),
    'pp-base': dict(embed_dims=96, depths=(2, 2, 18, 2),
                    num_heads=(3, 6, 12, 24), **_PP),
    'pp-large': dict(embed_dims=128, depths=(2, 2, 18, 2),
                     num_heads=(4, 8, 16, 32), **_PP),
    'pp-huge': dict(embed_dims=128, depths=(6, 6, 18, 2),
                    num_heads=(4, 8, 16, 32), **_PP),
}
#: Short aliases: t, s, b, l, pp-s, pp-b, pp-l, pp-h.
ARCH_ALIASES = {
    ('pp-' + n[3] if n.startswith('pp-') else n[0]): n
    for n in _ARCHS
}
#: The official stochastic-depth rate of each arch (the configs set it).
OFFICIAL_DROP_PATH = {
    'tiny': 0.1, 'small': 0.2, 'base': 0.3, 'large': 0.5,
    'pp-small': 0.2, 'pp-base': 0.3, 'pp-large': 0.5, 'pp-huge': 0.5
}
_REQUIRED = ('embed_dims', 'depths', 'num_heads')
_DEFAULTS = dict(mlp_ratio=4.0, **_V1)


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Return the full, checked setting dict of a CrossFormer arch.

    Args:
        arch (str | dict): A name from :attr:`CrossFormer.arch_zoo` or an
            alias (``'s'``, ``'pp-b'``), or a dict with ``embed_dims``,
            ``depths`` and ``num_heads`` (one entry per stage) and
            optionally ``group_size`` (per stage, default (7, 7, 7, 7)),
            ``interval`` (per stage, default (8, 4, 2, 1)), ``acl``
            (CrossFormer++'s cooling layers, default False) and
            ``mlp_ratio`` (default 4).

    Raises:
        ArchError: unknown name (with the close ones) or missing keys.
        ConfigError: inconsistent values.
    """
    if isinstance(arch, str):
        name = ARCH_ALIASES.get(arch.lower(), arch.lower())
        if name not in _ARCHS:
            valid = sorted(_ARCHS) + sorted(ARCH_ALIASES)
            close = close_names(arch, valid)
            hint = f' Did you mean {close}?' if close else ''
            raise ArchError(
                f'Unknown CrossFormer arch {arch!r}.{hint} Valid archs: '
                f'{", ".join(valid)}, or a dict with '
                f'{", ".join(_REQUIRED)}.')
        return dict(_DEFAULTS, **_ARCHS[name])
    if not isinstance(arch, dict):
        raise ArchError('CrossFormer arch must be a name or a dict, got '
                        f'{type(arch).__name__}.')
    missing = [k for k in _REQUIRED if k not in arch]
    if missing:
        raise ArchError(f'A custom CrossFormer arch dict needs the keys '
                        f'{missing}; got {sorted(arch)}.')
    unknown = set(arch) - set(_REQUIRED) - set(_DEFAULTS)
    if unknown:
        raise ArchError(f'Unknown keys {sorted(unknown)} in the CrossFormer '
                        f'arch dict; valid: {sorted(_REQUIRED)} + '
                        f'{sorted(_DEFAULTS)}.')
    s = dict(_DEFAULTS, **arch)
    for key in ('depths', 'num_heads', 'group_size', 'interval'):
        s[key] = tuple(int(v) for v in s[key])
        if len(s[key]) != 4:
            raise ConfigError(f'CrossFormer arch {key!r} needs one value per '
                              f'stage (4), got {s[key]}.')
    C = s['embed_dims']
    if C % 16:
        raise ConfigError(
            f'CrossFormer embed_dims must be a multiple of 16 (the embedding '
            f'splits it C/2 + C/4 + C/8 + C/8 and the position-bias MLP of '
            f'stage 1 has C/16 channels), got {C}.')
    for i, h in enumerate(s['num_heads']):
        if (C << i) % h:
            raise ConfigError(f'CrossFormer stage {i} has {C << i} channels, '
                              f'not divisible by its {h} heads.')
    if min(s['group_size']) < 1 or min(s['interval']) < 1:
        raise ConfigError('CrossFormer group_size and interval must be >= 1, '
                          f'got {s["group_size"]} and {s["interval"]}.')
    return s


# ---------------------------------------------------------------- layers
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


class Mlp(nn.Module):
    """Linear - GELU - Linear, with dropout after each linear."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


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
            :class:`CrossFormer`).
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


@MODELS.register_module()
class CrossFormer(BaseModule):
    """CrossFormer / CrossFormer++ backbone, exact to the official models.

    `CrossFormer: A Versatile Vision Transformer Hinging on Cross-scale
    Attention <https://arxiv.org/abs/2108.00154>`_ and `CrossFormer++
    <https://arxiv.org/abs/2303.06908>`_.

    It returns a tuple of (B, C_i, H_i, W_i) maps, one per stage in
    ``out_indices``, with C_i = ``embed_dims`` x 2^i and strides 4, 8, 16,
    32: the output of the stage's last block, before the merging layer. For
    classification (``out_indices=(3, )``, ``final_norm=True``) the last map
    goes through the final LayerNorm, and mmpretrain's
    ``GlobalAveragePooling`` neck then takes the token mean, which is what the
    official classifier does before its linear head. Dense tasks use
    ``out_indices=(0, 1, 2, 3)``, ``final_norm=False`` (the official dense
    backbones have no output norms) and feed mmdet's / mmseg's FPN or UPerHead
    directly.

    Inputs of any size work: the image is zero-padded at the bottom / right
    to a multiple of 4 (one embedding step), a stage map with an odd side is
    zero-padded before merging, and each attention block pads its map to a
    multiple of its group window and masks the padded keys, as the official
    dense backbones do. At 224 px (any multiple of 32 for the dense layout)
    nothing is padded outside the attention and the result equals the
    official model's.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, ``'large'``,
            ``'pp-small'``, ``'pp-base'``, ``'pp-large'``, ``'pp-huge'``
            (aliases ``t, s, b, l, pp-s, pp-b, pp-l, pp-h``) or a dict (see
            :func:`resolve_arch`). Defaults to ``'small'``.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int] | int): Stages to output, negative values
            count from the end. Defaults to (3, ).
        final_norm (bool): Build the official final LayerNorm (``norm``) and
            apply it to the last stage's output. Defaults to True.
        group_size (Sequence[int], optional): Per-stage G, overriding the
            arch's (the official dense configs set it). Defaults to None.
        interval (Sequence[int], optional): Per-stage I, overriding the
            arch's. Defaults to None.
        lda_mode (str): How LDA groups are laid out:

            - ``'group'``: every group holds G x G tokens sampled every I
              positions inside a (G I) x (G I) window (the code of the
              repository's ``main`` branch: CrossFormer++ and the released
              classifiers; its dense code too);
            - ``'interval'``: I x I groups over the whole map, each of
              ceil(H / I) x ceil(W / I) tokens (the dense code of the
              ``crossformer`` branch, which produced the published
              CrossFormer detection and segmentation results).

            At 224 px the two coincide for CrossFormer-T/S/B/L (H = G I in
            every stage). Defaults to ``'group'``.
        mlp_ratio (float, optional): Overrides the arch's (4). Defaults to
            None.
        qkv_bias (bool): Bias in the qkv projections. Defaults to True.
        drop_rate (float): Dropout after projections and MLP layers.
            Defaults to 0.
        attn_drop_rate (float): Dropout on attention weights. Defaults to 0.
        drop_path_rate (float): Stochastic depth, rising linearly from 0 to
            this over all blocks (official: 0.1 / 0.2 / 0.3 / 0.5 for
            T / S / B / L, see :data:`OFFICIAL_DROP_PATH`). Defaults to 0.
        frozen_stages (int): -1 freezes nothing, 0 the embedding, ``n > 0``
            also stages 0 .. n - 1 (with their merging layers) and, when
            ``n`` = 4, the final norm. Re-applied by ``train()``.
            Defaults to -1.
        norm_eval (bool): Keep batch-norm layers in eval mode while training
            (mmdet / mmseg convention). CrossFormer's own norms are all
            LayerNorms, which have no running statistics, so this only
            matters for a subclass that adds batch norms. Defaults to False.
        with_cp (bool): Gradient checkpointing of every block. Defaults to
            False.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH, prefix='backbone.')`` loads an xcit_mm or an
            official (classification or detection / segmentation) checkpoint
            with a checked key match. Defaults to None (official init).
    """
    arch_zoo = _ARCHS
    num_stages = 4

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 final_norm: bool = True,
                 group_size: Optional[Sequence[int]] = None,
                 interval: Optional[Sequence[int]] = None,
                 lda_mode: str = 'group',
                 mlp_ratio: Optional[float] = None,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        overrides = {k: v for k, v in dict(
            group_size=group_size, interval=interval,
            mlp_ratio=mlp_ratio).items() if v is not None}
        base = resolve_arch(arch)
        self.arch_settings = s = resolve_arch(dict(base, **overrides))
        if lda_mode not in LDA_MODES:
            raise ConfigError(f'CrossFormer lda_mode must be one of '
                              f'{LDA_MODES}, got {lda_mode!r}.')
        if not -1 <= frozen_stages <= self.num_stages:
            raise ConfigError(f'CrossFormer frozen_stages must be in -1..4, '
                              f'got {frozen_stages}.')
        self.in_channels = in_channels
        self.embed_dims = s['embed_dims']
        self.out_indices = sorted(set(normalize_out_indices(
            out_indices, self.num_stages, 'CrossFormer out_indices')))
        self.final_norm = final_norm
        self.lda_mode = lda_mode
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        #: Channels of every stage, and of every output.
        self.stage_channels = [self.embed_dims << i for i in range(4)]
        self.out_channels = [self.stage_channels[i] for i in self.out_indices]

        self.patch_embed = CrossScaleEmbedding(in_channels, self.embed_dims)
        self.pos_drop = nn.Dropout(drop_rate)
        depths = s['depths']
        dpr = torch.linspace(0, drop_path_rate, sum(depths),
                             device='cpu').tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(
                CrossFormerStage(
                    self.stage_channels[i], depth, s['num_heads'][i],
                    s['group_size'][i], s['interval'][i],
                    dpr[start:start + depth], s['acl'],
                    downsample=i < self.num_stages - 1,
                    lda_mode=lda_mode, mlp_ratio=s['mlp_ratio'],
                    qkv_bias=qkv_bias, drop=drop_rate,
                    attn_drop=attn_drop_rate))
        if final_norm:
            self.norm = nn.LayerNorm(self.stage_channels[-1])
        self._freeze_stages()

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """Official init (trunc-normal linears, unit LayerNorms), or a
        checked load of pretrained weights."""
        if (isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            load_pretrained_backbone(self, self.init_cfg['checkpoint'],
                                     prefix=self.init_cfg.get('prefix', ''))
            self._is_init = True
            return
        if self.init_cfg is None:
            self.apply(transformer_init_)
        super().init_weights()

    # ---------------------------------------------------------------- freeze
    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        mods = [self.patch_embed] + list(self.layers[:self.frozen_stages])
        if self.final_norm and self.frozen_stages >= self.num_stages:
            mods.append(self.norm)
        return mods

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'CrossFormer':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # --------------------------------------------------------------- forward
    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            got = x.shape[1] if x.dim() == 4 else '?'
            raise InputShapeError(
                f'CrossFormer expects images of shape (B, '
                f'{self.in_channels}, H, W), got {tuple(x.shape)}. Set '
                f'in_channels={got} in the backbone config if your data has '
                'another number of channels.')
        H, W = x.shape[2:]
        if H < 4 or W < 4:
            raise InputShapeError(
                f'CrossFormer needs images of at least 4x4 pixels (one '
                f'embedding step), got {H}x{W}. Resize the input (e.g. the '
                'Resize transform in the data pipeline).')
        if H % 4 or W % 4:
            x = F.pad(x, (0, (-W) % 4, 0, (-H) % 4))  # zeros bottom / right
        return x

    def _run(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.pos_drop(self.patch_embed(self._check_input(x)))
        outs = []
        for i, stage in enumerate(self.layers[:max(self.out_indices) + 1]):
            for blk in stage.blocks:
                x = self._run(blk, x)  # (B, H_i, W_i, C_i)
            if i in self.out_indices:
                out = x
                if self.final_norm and i == self.num_stages - 1:
                    out = self.norm(out)
                # (B, H, W, C) -> (B, C, H, W)
                outs.append(out.permute(0, 3, 1, 2).contiguous())
            if stage.downsample is not None and i < max(self.out_indices):
                x = stage.downsample(x)
        return tuple(outs)

    def get_attention_maps(self, x: torch.Tensor) -> Dict:
        """Attention weights of every block, for inspection.

        Returns:
            dict: ``(stage, block)`` -> dict(``weights``: (B * nG, heads, N,
            N), ``layout``: (Gh, Gw, I) (I = 1 is SDA), ``grid``: (H, W) of
            the stage).
        """
        x = self.patch_embed(self._check_input(x))
        maps = {}
        for i, stage in enumerate(self.layers):
            for j, blk in enumerate(stage.blocks):
                _, weights, layout = blk.attention(blk.norm1(x), True)
                maps[(i, j)] = dict(weights=weights, layout=layout,
                                    grid=tuple(x.shape[1:3]))
                x = blk(x)
            if stage.downsample is not None:
                x = stage.downsample(x)
        return maps
