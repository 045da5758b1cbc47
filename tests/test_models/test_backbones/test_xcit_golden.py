"""XCiT against golden outputs of the official facebookresearch/xcit code.

The fixtures (``tests/data/golden/xcit_*.npz``, written by
``tools/misc/official_golden.py xcit``; see ``tools/misc/golden/xcit.py``)
hold seeded random official weights, blocky uint8 images at 224x224,
200x300 and 512x683 (sides that are not multiples of 16 or 8, as mmseg's
whole-image ADE20k inference feeds them) and the official outputs. The
weights go through xcit_mm's converter, the model is built as a config
builds it, and every output must agree within 1e-4 relative.
"""
import pytest
import torch

from tests.test_models.test_backbones.test_xcit import build_classifier
from tests.utils.golden import assert_golden, load_golden
from xcit_mm.models.backbones import XCiT
from xcit_mm.models.backbones.xcit_convert import (
    convert_checkpoint,
    infer_arch,
    official_dense_to_mm,
)
from xcit_mm.models.necks import XCiTMultiScaleNeck

SIZES = ('224x224', '200x300', '512x683')
STRIDES = (4, 8, 16, 32)


def to_input(image: torch.Tensor) -> torch.Tensor:
    """The fixtures' scaling of their (1, H, W, 3) uint8 images."""
    return (image.permute(0, 3, 1, 2).float() - 127.5) / 58


@pytest.mark.parametrize('patch', [16, 8])
def test_classifier_matches_official(patch):
    params, inputs, outputs, meta = load_golden(f'xcit_cls_p{patch}')
    assert meta['args']['tokens_norm'] and meta['args']['eta'] == 1.0
    state_dict, report = convert_checkpoint(dict(model=params))
    assert report['source_format'] == 'official'
    arch = report['arch']
    assert arch['patch_size'] == patch
    model = build_classifier(arch['arch'], patch,
                             num_classes=meta['args']['num_classes'])
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    with torch.no_grad():
        for size in SIZES:
            logits = model(to_input(inputs[size]), mode='tensor')
            assert_golden(logits, outputs[size], what=f'p{patch} {size}')


@pytest.mark.parametrize('patch', [16, 8])
def test_dense_backbone_and_adapter_match_official(patch):
    """The official det/seg backbone with its fpn1..4 = XCiT(featmap) +
    XCiTMultiScaleNeck, with the official file's keys renamed by the
    dense converter."""
    params, inputs, outputs, meta = load_golden(f'xcit_dense_p{patch}')
    converted = official_dense_to_mm(
        {f'backbone.{k}': v for k, v in params.items()}, adapter='neck',
        fpn=None)
    backbone_sd = {k[len('backbone.'):]: v for k, v in converted.items()
                   if k.startswith('backbone.')}
    neck_sd = {k[len('neck.'):]: v for k, v in converted.items()
               if k.startswith('neck.')}
    arch = infer_arch(backbone_sd)
    assert arch['patch_size'] == patch
    backbone = XCiT(arch['arch'], patch_size=patch, out_type='featmap',
                    out_indices=meta['args']['out_indices']).eval()
    neck = XCiTMultiScaleNeck(arch['arch']['embed_dims'],
                              patch_size=patch).eval()
    backbone.load_state_dict(backbone_sd, strict=True)
    neck.load_state_dict(neck_sd, strict=True)
    with torch.no_grad():
        for size in SIZES:
            h, w = map(int, size.split('x'))
            feats = backbone(to_input(inputs[size]))
            grid = (-(-h // patch), -(-w // patch))  # the official grid
            assert all(f.shape[2:] == grid for f in feats)
            for i, (out, stride) in enumerate(zip(neck(feats), STRIDES)):
                k = 32 // stride
                assert_golden(out[..., ::k, ::k],
                              outputs[f'{size}.fpn{i + 1}'],
                              what=f'p{patch} {size} fpn{i + 1}')
