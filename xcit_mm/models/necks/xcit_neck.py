"""The official XCiT multi-scale adapter for detection and segmentation."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule

from xcit_mm.models.utils.arch import check_patch_size
from xcit_mm.registry import MODELS

#: Output strides of the adapter, whatever the patch size.
OUT_STRIDES = (4, 8, 16, 32)


@MODELS.register_module()
class XCiTMultiScaleNeck(BaseModule):
    """Turn XCiT's four single-stride maps into a stride 4/8/16/32 pyramid.

    XCiT (``out_type='featmap'``) outputs four (B, C, Hp, Wp) maps, all at
    stride ``patch_size``. Like the official det/seg code, map ``i`` is
    resampled to stride ``OUT_STRIDES[i]`` by:

    - p16: stride 4 = ConvT(2, s2) -> norm -> act -> ConvT(2, s2);
      stride 8 = ConvT(2, s2); stride 16 = identity; stride 32 =
      MaxPool(2).
    - p8: stride 4 = ConvT(2, s2); stride 8 = identity; stride 16 =
      MaxPool(2); stride 32 = MaxPool(4).

    All outputs keep ``in_channels`` channels. The official code hard-codes
    ``SyncBatchNorm`` in the p16 stride-4 branch; here the norm comes from
    ``norm_cfg`` (the configs use BN and let mmengine turn every BN into
    SyncBN in distributed runs with ``sync_bn='torch'``).

    Output sizes for a (Hp, Wp) grid: up-sampled maps are exactly ``k * Hp``;
    max-pooled ones are ``floor(Hp / k)`` (as in the official code; mmdet pads
    inputs to a multiple of 32, so there the division is exact).

    Use it as the neck of an mmseg UperNet, or as the first of a list of
    necks before an FPN (mmengine builds a list of necks as a
    ``Sequential``)::

        neck=[dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=384,
                   patch_size=16),
              dict(type='FPN', in_channels=[384] * 4, out_channels=256,
                   num_outs=5)]

    Args:
        in_channels (int): Channels of the XCiT maps (the arch's
            ``embed_dims``).
        patch_size (int): The backbone's patch size, 16 or 8: the stride of
            its maps. Defaults to 16.
        norm_cfg (dict): Norm inside the p16 stride-4 branch. Defaults to
            ``dict(type='BN')``.
        act_cfg (dict): Activation inside the p16 stride-4 branch. Defaults
            to ``dict(type='GELU')``.
        init_cfg (dict, optional): Defaults to None (PyTorch's default
            init, as in the official code).

    Attributes:
        out_channels (list[int]): Channels of each output, ``[in_channels] *
            4``.
        strides (tuple[int]): Stride of each output w.r.t. the input image,
            ``(4, 8, 16, 32)``.
    """

    def __init__(self,
                 in_channels: int,
                 patch_size: int = 16,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        check_patch_size(patch_size, name="XCiTMultiScaleNeck patch_size "
                         "(the backbone's)")
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise TypeError('XCiTMultiScaleNeck in_channels must be the '
                            "backbone's embed_dims (a positive int), got "
                            f'{in_channels!r}.')
        C = in_channels
        self.in_channels = C
        self.patch_size = patch_size
        self.out_channels: List[int] = [C] * len(OUT_STRIDES)
        self.strides: Tuple[int, ...] = OUT_STRIDES

        def up2() -> nn.Module:
            return nn.ConvTranspose2d(C, C, kernel_size=2, stride=2)

        # Module nesting (hence parameter names fpn1.0, fpn1.1, fpn1.3,
        # fpn2.0) follows the official backbone's fpn1..fpn4.
        if patch_size == 16:
            self.fpn1 = nn.Sequential(up2(),
                                      build_norm_layer(norm_cfg, C)[1],
                                      build_activation_layer(act_cfg), up2())
            self.fpn2 = nn.Sequential(up2())
            self.fpn3 = nn.Identity()
            self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2)
        else:
            self.fpn1 = nn.Sequential(up2())
            self.fpn2 = nn.Identity()
            self.fpn3 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2))
            self.fpn4 = nn.Sequential(nn.MaxPool2d(kernel_size=4, stride=4))

    def forward(self, inputs: Sequence[torch.Tensor]
                ) -> Tuple[torch.Tensor, ...]:
        """Resample the four (B, C, Hp, Wp) maps to strides 4, 8, 16, 32.

        Returns:
            tuple[Tensor]: four (B, C, h, w) maps. (h, w) is, for p16,
            (4Hp, 4Wp), (2Hp, 2Wp), (Hp, Wp), (Hp//2, Wp//2); for p8,
            (2Hp, 2Wp), (Hp, Wp), (Hp//2, Wp//2), (Hp//4, Wp//4).
        """
        if len(inputs) != len(OUT_STRIDES):
            raise ValueError(
                f'XCiTMultiScaleNeck needs {len(OUT_STRIDES)} feature maps, '
                f'got {len(inputs)}. Set the backbone to '
                "out_type='featmap' with 4 out_indices (the default for "
                'depth 12 and 24).')
        for x in inputs:
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ValueError(
                    'XCiTMultiScaleNeck expects (B, '
                    f'{self.in_channels}, Hp, Wp) maps, got '
                    f'{tuple(x.shape)}. Set in_channels to the backbone\'s '
                    'embed_dims.')
            if x.shape[2:] != inputs[0].shape[2:]:
                raise ValueError(
                    'XCiTMultiScaleNeck expects maps of one size (one '
                    'stride), got '
                    f'{[tuple(t.shape[2:]) for t in inputs]}.')
        ops = (self.fpn1, self.fpn2, self.fpn3, self.fpn4)
        return tuple(op(x) for op, x in zip(ops, inputs))
