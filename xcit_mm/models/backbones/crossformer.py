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
(:mod:`xcit_mm.models.backbones.crossformer_convert`). The layers are in
:mod:`xcit_mm.models.layers.crossformer_layers`.

Shapes: B (batch), H x W (the token grid of a stage), C (channels), N
(tokens in a group), nG (groups per image). Tokens travel between layers as
(B, H, W, C) maps.
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from xcit_mm.models.layers.crossformer_layers import (
    LDA_MODES,
    CrossFormerStage,
    CrossScaleEmbedding,
)
from xcit_mm.models.utils.arch import normalize_out_indices
from xcit_mm.registry import MODELS
from xcit_mm.utils.errors import ArchError, ConfigError
from xcit_mm.utils.suggest import close_names

from .base import TransformerBackbone
from .crossformer_convert import checkpoint_filter_fn

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


@MODELS.register_module()
class CrossFormer(TransformerBackbone):
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
            with a checked key match: every backbone tensor must be there.
            Defaults to None (official init).
        pretrained (str, optional): Not supported (use ``init_cfg``); only
            there to explain mmseg's ``model.pretrained``.
    """
    arch_zoo = _ARCHS
    num_stages = 4
    family = 'CrossFormer'
    converter = 'xcit_mm.models.backbones.crossformer_convert'
    convert_remedy = 'convert-crossformer'
    checkpoint_filter = staticmethod(checkpoint_filter_fn)
    classification_only = re.compile(r'^(norm|head)\.')

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
                 init_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None):
        super().__init__(in_channels, frozen_stages, norm_eval, with_cp,
                         init_cfg, pretrained)
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
        self.embed_dims = s['embed_dims']
        self.out_indices = sorted(set(normalize_out_indices(
            out_indices, self.num_stages, 'CrossFormer out_indices')))
        self.final_norm = final_norm
        self.lda_mode = lda_mode
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

    # ---------------------------------------------------------------- freeze
    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        mods = [self.patch_embed] + list(self.layers[:self.frozen_stages])
        if self.final_norm and self.frozen_stages >= self.num_stages:
            mods.append(self.norm)
        return mods

    # --------------------------------------------------------------- forward
    def _input_step(self) -> Tuple[int, str, str]:
        return 4, 'one embedding step', ''

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
