"""The DINO projection head (Caron et al., 2021, arXiv 2104.14294)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from xcit_mm.registry import MODELS
from xcit_mm.utils.errors import ConfigError


class WeightNormLinear(nn.Module):
    """A bias-free linear layer with weight normalisation along rows.

    ``weight = weight_g * weight_v / ||weight_v||`` where the norm is taken
    per output unit (``torch.nn.utils.weight_norm(linear, dim=0)``), with
    the same parameter names (``weight_g`` of shape (out, 1), ``weight_v``
    of shape (out, in)), so official DINO checkpoints load unchanged. It is
    written out rather than built with the weight-norm hooks so that it
    deep-copies cleanly and needs no deprecated API.

    Args:
        in_features (int): Input size.
        out_features (int): Output size (the number of prototypes).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_g = nn.Parameter(torch.ones(out_features, 1))
        # nn.Linear's default initialisation of the direction, g = 1
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))

    @property
    def weight(self) -> torch.Tensor:
        v = self.weight_v
        return v * (self.weight_g / v.norm(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)

    def extra_repr(self) -> str:
        return f'in_features={self.in_features}, ' \
               f'out_features={self.out_features}'


@MODELS.register_module()
class DINOHead(BaseModule):
    """DINO's projection head.

    An MLP of ``num_layers`` linear layers (GELU between them, optional
    BatchNorm) down to a ``bottleneck_channels`` vector, L2-normalised, then
    a weight-normalised, bias-free linear layer to ``out_channels``
    prototypes. The MLP's linear layers are initialised trunc-normal (std
    0.02) with zero bias; the last layer keeps ``nn.Linear``'s default
    direction and a unit norm.

    Args:
        in_channels (int): Backbone feature size (384 for XCiT-S12).
        out_channels (int): Number of prototypes (``out_dim``). Defaults to
            65536.
        hidden_channels (int): Width of the hidden layers. Defaults to 2048.
        bottleneck_channels (int): Size of the normalised bottleneck.
            Defaults to 256.
        num_layers (int): Linear layers of the MLP (>= 1). Defaults to 3.
        use_bn (bool): BatchNorm after each hidden linear layer. Defaults to
            False.
        norm_last_layer (bool): Freeze the last layer's norm
            (``weight_g`` = 1, not trained), which makes training more
            stable; ``False`` trains it (the XCiT recipe). Defaults to True.
        init_cfg (dict, optional): Defaults to None (the DINO init).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 65536,
                 hidden_channels: int = 2048,
                 bottleneck_channels: int = 256,
                 num_layers: int = 3,
                 use_bn: bool = False,
                 norm_last_layer: bool = True,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ConfigError(
                f'DINOHead num_layers must be >= 1, got {num_layers}.')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm_last_layer = norm_last_layer
        if num_layers == 1:
            self.mlp = nn.Linear(in_channels, bottleneck_channels)
        else:
            layers = []
            dims = [in_channels] + [hidden_channels] * (num_layers - 1)
            for d_in, d_out in zip(dims[:-1], dims[1:]):
                layers.append(nn.Linear(d_in, d_out))
                if use_bn:
                    layers.append(nn.BatchNorm1d(d_out))
                layers.append(nn.GELU())
            layers.append(nn.Linear(hidden_channels, bottleneck_channels))
            self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                nn.init.zeros_(m.bias)
        self.last_layer = WeightNormLinear(bottleneck_channels, out_channels)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels) features -> (B, out_channels) logits."""
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)
