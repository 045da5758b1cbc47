"""Argument checks and the weight init that several models share."""
from typing import Collection, List, Sequence, Union

import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_

from xcit_mm.utils.errors import ConfigError


def normalize_out_indices(out_indices: Union[int, Sequence[int]],
                          num_layers: int, name: str = 'out_indices'
                          ) -> List[int]:
    """Turn (possibly negative) layer indices into sorted-as-given,
    non-negative ones, checked against ``num_layers``.

    Args:
        out_indices (int | Sequence[int]): One index or several; ``-1`` is
            the last layer.
        num_layers (int): How many layers can be indexed.
        name (str): How the error names the argument, e.g.
            ``'XCiT out_indices'`` or ``'--layers'``.

    Raises:
        ConfigError: An index outside ``-num_layers .. num_layers - 1``.
    """
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    out = []
    for i in out_indices:
        j = i + num_layers if i < 0 else i
        if not 0 <= j < num_layers:
            raise ConfigError(
                f'{name} entry {i} is out of range for {num_layers} layers '
                f'(valid: {-num_layers} .. {num_layers - 1}).')
        out.append(j)
    return out


def check_patch_size(patch_size: int, allowed: Collection[int] = (8, 16),
                     name: str = 'XCiT patch_size') -> int:
    """Return ``patch_size`` if it is one of ``allowed``.

    Raises:
        ConfigError: Another patch size.
    """
    if patch_size not in allowed:
        raise ConfigError(
            f'{name} must be one of {sorted(allowed)}, got {patch_size!r}: '
            'the convolutional patch embedding exists for these only.')
    return patch_size


def transformer_init_(m: nn.Module) -> None:
    """The official init of XCiT and CrossFormer, for ``model.apply``:
    linear layers trunc-normal (std 0.02) with zero bias, LayerNorms one
    and zero."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
