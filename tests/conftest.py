"""Shared helpers for the xcit_mm tests: tiny archs, timm references with
randomised (not default-initialised) weights, and small synthetic data."""
import os
import os.path as osp

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: (xcit_mm arch, timm name stem) for the 7 official sizes.
ARCHS = [('n12', 'nano_12'), ('t12', 'tiny_12'), ('t24', 'tiny_24'),
         ('s12', 'small_12'), ('s24', 'small_24'), ('m24', 'medium_24'),
         ('l24', 'large_24')]
#: A tiny architecture for fast tests.
TINY_ARCH = dict(embed_dims=32, depth=2, num_heads=2)


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


def make_image_folder(root: str, num_classes: int = 2, per_class: int = 4,
                      size: int = 32, seed: int = 0) -> str:
    """ImageNet-style folder (root/class_i/*.png) of random images whose
    class is visible in the mean colour."""
    import cv2
    rng = np.random.default_rng(seed)
    for c in range(num_classes):
        d = osp.join(root, f'class_{c}')
        os.makedirs(d, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            img[..., c % 3] += np.uint8(120)
            cv2.imwrite(osp.join(d, f'{i}.png'), img)
    return root


@pytest.fixture
def image_folder(tmp_path):
    return make_image_folder(str(tmp_path / 'images'))


def tiny_teacher_cfg(num_classes: int) -> dict:
    """A tiny distillation teacher: timm's test_resnet (~0.4M parameters)
    through mmpretrain's TimmClassifier, like the default RegNetY teacher."""
    return dict(type='TimmClassifier', model_name='test_resnet',
                num_classes=num_classes, pretrained=False)


def make_split_folders(root: str, num_classes: int = 2, per_class: int = 4,
                       size: int = 32) -> str:
    """root/{train,val}/class_i/*.png (an ImageNet-style split)."""
    make_image_folder(osp.join(root, 'train'), num_classes, per_class, size,
                      seed=0)
    make_image_folder(osp.join(root, 'val'), num_classes, per_class, size,
                      seed=1)
    return root
