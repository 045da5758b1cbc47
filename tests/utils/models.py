"""Tiny architectures, timm names and weights for model tests."""
import os

import torch

from tests.utils.tools import (
    REPO,  # noqa: F401
    load_tool,
)

#: (xcit_mm arch, timm name stem) for the 7 official sizes.
ARCHS = [('n12', 'nano_12'), ('t12', 'tiny_12'), ('t24', 'tiny_24'),
         ('s12', 'small_12'), ('s24', 'small_24'), ('m24', 'medium_24'),
         ('l24', 'large_24')]
#: A tiny architecture for fast tests.
TINY_ARCH = dict(embed_dims=32, depth=2, num_heads=2)
#: A tiny dense XCiT: 4 blocks, each one an output (the neck takes 4 maps).
TINY_DENSE_BACKBONE = dict(arch=dict(embed_dims=32, depth=4, num_heads=2),
                           out_indices=(0, 1, 2, 3))


def timm_name(stem: str, patch: int, size: int = 224) -> str:
    return f'xcit_{stem}_p{patch}_{size}'


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BN statistic random values.

    Default init hides bugs (layer scale 1e-5, temperature 1, BN identity),
    so parity is checked on weights where every part of the model matters.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if 'gamma' in name or 'temperature' in name:
            p.copy_(0.5 + torch.rand(p.shape, generator=g))
        else:
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape,
                                                   generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape,
                                                 generator=g))
    return model


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def convert_tiny_timm_backbone(dst: str, patch_size: int = 16,
                               seed: int = 0) -> dict:
    """Write a ``--backbone-only`` xcit_mm checkpoint, made by
    ``tools/model_converters/xcit2mm.py`` from a randomised timm XCiT of the
    :data:`TINY_DENSE_BACKBONE` arch.

    Returns:
        dict: The timm model's backbone tensors in xcit_mm names (class
        token, class attention and final norm included).
    """
    import timm.models.xcit

    from xcit_mm.models.backbones.xcit_convert import to_xcit_mm
    arch = TINY_DENSE_BACKBONE['arch']
    timm_model = randomize_(timm.models.xcit.Xcit(
        patch_size=patch_size, embed_dim=arch['embed_dims'],
        depth=arch['depth'], num_heads=arch['num_heads'], num_classes=10,
        tokens_norm=True), seed=seed)
    src = dst + '.timm.pth'
    torch.save(timm_model.state_dict(), src)
    if load_tool('tools/model_converters/xcit2mm.py').main(
            [src, dst, '--backbone-only']) != 0:
        raise RuntimeError(f'xcit2mm.py failed on {src}')
    os.remove(src)
    return to_xcit_mm(timm_model.state_dict())[0]
