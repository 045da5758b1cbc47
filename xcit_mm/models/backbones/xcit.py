"""XCiT backbone (Cross-Covariance Image Transformer, arXiv 2106.09681)."""
import difflib
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_

from xcit_mm.models.layers import (
    ClassAttentionBlock,
    ConvPatchEmbed,
    PositionalEncodingFourier,
    XCABlock,
    check_impl,
)
from xcit_mm.models.utils.arch import check_patch_size, normalize_out_indices
from xcit_mm.registry import MODELS
from xcit_mm.utils.errors import ArchError, ConfigError

from .base import TransformerBackbone
from .xcit_convert import CLS_ONLY, checkpoint_filter_fn

_ARCHS = {
    'nano-12': dict(embed_dims=128, depth=12, num_heads=4, eta=1.0,
                    tokens_norm=False),
    'tiny-12': dict(embed_dims=192, depth=12, num_heads=4, eta=1.0,
                    tokens_norm=True),
    'tiny-24': dict(embed_dims=192, depth=24, num_heads=4, eta=1e-5,
                    tokens_norm=True),
    'small-12': dict(embed_dims=384, depth=12, num_heads=8, eta=1.0,
                     tokens_norm=True),
    'small-24': dict(embed_dims=384, depth=24, num_heads=8, eta=1e-5,
                     tokens_norm=True),
    'medium-24': dict(embed_dims=512, depth=24, num_heads=8, eta=1e-5,
                      tokens_norm=True),
    'large-24': dict(embed_dims=768, depth=24, num_heads=16, eta=1e-5,
                     tokens_norm=True),
}
#: Short aliases: n12, t12, t24, s12, s24, m24, l24.
ARCH_ALIASES = {f'{name[0]}{name.split("-")[1]}': name for name in _ARCHS}

#: Official dense-task out_indices by depth.
DENSE_OUT_INDICES = {12: (3, 5, 7, 11), 24: (7, 11, 15, 23)}

OUT_TYPES = ('cls_token', 'featmap', 'raw')


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Return the full setting dict of a named or custom architecture.

    Args:
        arch (str | dict): A name from :attr:`XCiT.arch_zoo` or an alias
            (``'s12'``), or a dict with at least ``embed_dims``, ``depth``
            and ``num_heads`` (optional: ``eta`` = 1.0, ``tokens_norm`` =
            True, ``mlp_ratio`` = 4.0).
    """
    if isinstance(arch, str):
        name = ARCH_ALIASES.get(arch.lower(), arch.lower())
        if name not in _ARCHS:
            valid = sorted(_ARCHS) + sorted(ARCH_ALIASES)
            close = difflib.get_close_matches(arch, valid, n=3)
            hint = f' Did you mean {close}?' if close else ''
            raise ArchError(f'Unknown XCiT arch {arch!r}.{hint} Valid archs: '
                            f'{", ".join(valid)}, or a dict with embed_dims, '
                            'depth and num_heads.')
        return dict(mlp_ratio=4.0, **_ARCHS[name])
    if isinstance(arch, dict):
        missing = {'embed_dims', 'depth', 'num_heads'} - set(arch)
        if missing:
            raise ArchError(f'A custom XCiT arch dict needs the keys '
                            f'{sorted(missing)}; got {sorted(arch)}.')
        if arch['embed_dims'] % arch['num_heads']:
            raise ConfigError('XCiT embed_dims must be divisible by '
                              f'num_heads, got {arch["embed_dims"]} and '
                              f'{arch["num_heads"]}.')
        return dict(dict(eta=1.0, tokens_norm=True, mlp_ratio=4.0), **arch)
    raise TypeError(f'XCiT arch must be a str or a dict, got {type(arch)}.')


@MODELS.register_module()
class XCiT(TransformerBackbone):
    """Cross-Covariance Image Transformer, exact to the official model.

    `XCiT: Cross-Covariance Image Transformers
    <https://arxiv.org/abs/2106.09681>`_. A conv patch embedding and Fourier
    positional encoding feed XCA blocks (cross-covariance attention, local
    patch interaction, MLP, each with layer scale). In classification mode a
    class token then goes through two class-attention blocks and a final
    LayerNorm.

    Inputs of any size work, exactly as in the official code: the stem's
    stride-2 3x3 convolutions (padding 1) run on the raw image, nothing is
    padded beforehand, and the positional encoding is computed for the grid
    they produce. Each convolution maps a side ``s`` to ``ceil(s / 2)``, so
    the grid is ``ceil(H / patch_size) x ceil(W / patch_size)`` and token
    ``(i, j)`` is centred near pixel ``(patch_size * i, patch_size * j)``:
    the feature stride is ``patch_size``. At a side that is not a multiple
    of ``patch_size`` the last row / column of tokens sees the image border
    through the convolutions' own zero padding (the official behaviour; the
    values differ from those of a zero-padded image). An input with the
    wrong number of channels raises a ``ValueError``.

    Args:
        arch (str | dict): ``'nano-12'``, ``'tiny-12'``, ``'tiny-24'``,
            ``'small-12'``, ``'small-24'``, ``'medium-24'``, ``'large-24'``
            or their aliases ``n12 ... l24``; or a dict (see
            :func:`resolve_arch`). Defaults to ``'small-12'``.
        patch_size (int): 16 or 8. Defaults to 16.
        in_channels (int): Input channels. Defaults to 3.
        out_type (str): What :meth:`forward` returns, a tuple of:

            - ``'cls_token'``: the normalised class token (B, C), for
              classification (one element);
            - ``'featmap'``: the XCA-block outputs at ``out_indices`` as
              (B, C, Hp, Wp) maps, for dense tasks. No class token, class
              attention or final norm is built in this mode;
            - ``'raw'``: the XCA-block outputs at ``out_indices`` as (B, N, C)
              tokens.

            Defaults to ``'cls_token'``.
        out_indices (Sequence[int] | int, optional): XCA blocks to output in
            ``'featmap'`` and ``'raw'`` modes; negative values count from the
            end. Defaults to the official (3, 5, 7, 11) for depth 12 and
            (7, 11, 15, 23) for depth 24.
        drop_rate (float): Dropout after MLP and attention projections.
            Defaults to 0.
        attn_drop_rate (float): Dropout on attention maps. Defaults to 0.
        drop_path_rate (float): Stochastic depth, the *same* rate in every XCA
            block (class-attention blocks get none). Defaults to 0.
        qkv_bias (bool): Bias in qkv projections. Defaults to True.
        norm_cfg (dict): Norm of the patch embedding and LPI (the official
            model uses BN). ``dict(type='SyncBN')`` for multi-GPU dense
            training. Defaults to ``dict(type='BN')``.
        frozen_stages (int): -1 freezes nothing; 0 freezes the patch and
            positional embeddings; ``n > 0`` also freezes the first ``n`` XCA
            blocks (and, when ``n >= depth``, the class-attention part).
            Frozen norm layers stay in eval mode. Defaults to -1.
        with_cp (bool): Gradient checkpointing of each block (the parts of
            an XCA block without BN, so running statistics are updated
            once per step and SyncBN communicates in the forward pass
            only). Defaults to False.
        impl (str): ``'fast'``: the same function with fewer kernels and
            copies (a hand-written XCA backward in eager, a formulation that
            ``torch.compile`` fuses, channels-last patch embedding); or
            ``'reference'``: the direct transcription of the official code.
            Same parameters, outputs equal to float rounding (tested).
            Defaults to ``'fast'``.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH,
            prefix='backbone.')`` loads an xcit_mm, official or timm
            checkpoint (converted on the fly) and logs the loaded / missing /
            unexpected counts. Defaults to None (official initialisation).
        pretrained (str, optional): Not supported (use ``init_cfg``); only
            there to explain mmseg's ``model.pretrained`` in one paragraph.

    Parameter names for ``paramwise_cfg``: ``.temperature`` (per-head XCA
    temperature), ``cls_token``, ``.gamma1/.gamma2/.gamma3`` (layer scale),
    ``pos_embed``.
    """
    arch_zoo = _ARCHS
    family = 'XCiT'
    converter = 'xcit_mm.models.backbones.xcit_convert'
    convert_remedy = 'convert-xcit'
    checkpoint_filter = staticmethod(checkpoint_filter_fn)
    classification_only = CLS_ONLY
    # fine-tuning may add or drop parts; shapes must match, and at least
    # half of the tensors must load (the official dense code silently
    # loaded nothing when the prefix was wrong)
    pretrained_strict = False
    min_loaded_ratio = 0.5

    def __init__(self,
                 arch: Union[str, dict] = 'small-12',
                 patch_size: int = 16,
                 in_channels: int = 3,
                 out_type: str = 'cls_token',
                 out_indices: Optional[Union[Sequence[int], int]] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 norm_cfg: dict = dict(type='BN'),
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 impl: str = 'fast',
                 init_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None):
        super().__init__(in_channels, frozen_stages, with_cp=with_cp,
                         init_cfg=init_cfg, pretrained=pretrained)
        self.impl = check_impl(impl)
        self.arch_settings = resolve_arch(arch)
        check_patch_size(patch_size)
        if out_type not in OUT_TYPES:
            raise ConfigError(f'XCiT out_type must be one of {OUT_TYPES}, '
                              f'got {out_type!r}.')
        s = self.arch_settings
        self.embed_dims = C = s['embed_dims']
        self.depth = s['depth']
        self.num_heads = s['num_heads']
        self.patch_size = patch_size
        self.out_type = out_type

        if out_indices is None:
            out_indices = DENSE_OUT_INDICES.get(self.depth, (self.depth - 1, ))
        self.out_indices = normalize_out_indices(out_indices, self.depth,
                                                 'XCiT out_indices')

        self.patch_embed = ConvPatchEmbed(C, patch_size, in_channels,
                                          norm_cfg, impl)
        self.pos_embed = PositionalEncodingFourier(C)
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList([
            XCABlock(C, self.num_heads, s['mlp_ratio'], qkv_bias, drop_rate,
                     attn_drop_rate, drop_path_rate, s['eta'], norm_cfg,
                     impl)
            for _ in range(self.depth)
        ])
        # The classification part exists only where it is used, so dense
        # training has no unused parameters (no DDP find_unused_parameters).
        self.with_cls_token = out_type == 'cls_token'
        if self.with_cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, C))
            self.cls_attn_blocks = nn.ModuleList([
                ClassAttentionBlock(C, self.num_heads, s['mlp_ratio'],
                                    qkv_bias, drop_rate, attn_drop_rate,
                                    s['eta'], s['tokens_norm'], impl)
                for _ in range(2)
            ])
            self.norm = nn.LayerNorm(C, eps=1e-6)
        if self.frozen_stages >= 0:
            self._freeze_stages()

    # ------------------------------------------------------------------ init
    def _init_extra_weights(self) -> None:
        if self.with_cls_token:
            trunc_normal_(self.cls_token, std=.02)

    # ---------------------------------------------------------------- freeze
    def _frozen_modules(self) -> List[Union[nn.Module, nn.Parameter]]:
        if self.frozen_stages < 0:
            return []
        mods = [self.patch_embed, self.pos_embed]
        mods += list(self.blocks[:self.frozen_stages])
        if self.with_cls_token and self.frozen_stages >= self.depth:
            mods += [*self.cls_attn_blocks, self.norm, self.cls_token]
        return mods

    # --------------------------------------------------------------- forward
    def _input_step(self) -> Tuple[int, str, str]:
        # 1: no padding and no minimum size; the official stem runs on the
        # raw image (see the class docstring)
        return 1, 'one pixel', ''

    def _run(self, block: nn.Module, *args):
        if (isinstance(block, XCABlock) and self.with_cp and self.training
                and torch.is_grad_enabled()):
            return block(*args, with_cp=True)  # keeps its BN out of recompute
        return super()._run(block, *args)

    def forward_tokens(self, x: torch.Tensor):
        """Embed and run the XCA blocks.

        Returns:
            tuple: the final tokens (B, N, C), the tokens after each block in
            ``out_indices`` (list of (B, N, C)) and the grid (Hp, Wp).
        """
        x = self._check_input(x)
        x, (Hp, Wp) = self.patch_embed(x)  # (B, N, C)
        x = self.pos_drop(x + self.pos_embed(Hp, Wp))
        outs = []
        last = self.depth - 1 if self.with_cls_token else max(self.out_indices)
        for i, blk in enumerate(self.blocks[:last + 1]):
            x = self._run(blk, x, Hp, Wp)
            if i in self.out_indices:
                outs.append(x)
        return x, outs, (Hp, Wp)

    def forward_cls(self, x: torch.Tensor) -> torch.Tensor:
        """Prepend the class token, run class attention and the final norm.

        Returns (B, 1 + N, C).
        """
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        for blk in self.cls_attn_blocks:
            x = self._run(blk, x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x, outs, (Hp, Wp) = self.forward_tokens(x)
        if self.out_type == 'cls_token':
            return (self.forward_cls(x)[:, 0], )  # (B, C)
        if self.out_type == 'raw':
            return tuple(outs)  # each (B, N, C)
        B, _, C = x.shape
        # (B, N, C) -> (B, Hp, Wp, C) -> (B, C, Hp, Wp)
        return tuple(
            o.reshape(B, Hp, Wp, C).permute(0, 3, 1, 2).contiguous()
            for o in outs)

    def get_attention_maps(self, x: torch.Tensor,
                           layers: Optional[Sequence[int]] = None) -> Dict:
        """Attention maps for visualisation (eval mode, no grad needed).

        Returns a dict with ``'xca'``: {block index: (B, h, d, d) channel
        attention}, ``'grid'``: (Hp, Wp) and, in classification mode,
        ``'cls_attn'``: (B, h, N) attention of the class token over the patch
        tokens in the last class-attention block.
        """
        layers = range(self.depth) if layers is None else [
            i + self.depth if i < 0 else i for i in layers
        ]
        x = self._check_input(x)
        x, (Hp, Wp) = self.patch_embed(x)
        x = x + self.pos_embed(Hp, Wp)
        xca = {}
        for i, blk in enumerate(self.blocks):
            if i in layers:
                _, xca[i] = blk.attn(blk.norm1(x), return_attn=True)
            x = blk(x, Hp, Wp)
        result = dict(xca=xca, grid=(Hp, Wp))
        if self.with_cls_token:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
            for blk in self.cls_attn_blocks:
                x, attn = blk(x, return_attn=True)
            result['cls_attn'] = attn[..., 1:]  # drop the cls->cls weight
        return result
