"""Converting official / timm / DINO weights, and loading them via init_cfg."""
import re

import pytest
import timm
import torch
from mmengine.runner.checkpoint import load_checkpoint

from tests.test_models.test_backbones.test_xcit import build_classifier
from tests.utils import TINY_ARCH, load_tool, randomize_, relative_error
from xcit_mm.cli import explain_exception
from xcit_mm.models import XCiT
from xcit_mm.models.backbones.xcit_convert import (
    convert_checkpoint,
    to_xcit_mm,
)
from xcit_mm.utils.errors import CheckpointMismatchError, MissingFileError


def timm_to_official(sd: dict) -> dict:
    """Reverse timm's renames: the layout of the official .pth files."""
    out = {}
    fused = {}
    for k, v in sd.items():
        k = k.replace('pos_embed.', 'pos_embeder.', 1)
        m = re.match(r'(cls_attn_blocks\.\d+\.attn\.)([qkv])\.(weight|bias)$',
                     k)
        if m:
            fused.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = v
        else:
            out[k] = v
    for (prefix, kind), parts in fused.items():
        out[f'{prefix}qkv.{kind}'] = torch.cat(
            [parts['q'], parts['k'], parts['v']])
    return out


@pytest.fixture(scope='module')
def timm_nano():
    return randomize_(timm.create_model('xcit_nano_12_p8_224'), 5).eval()


def test_official_format_converts_to_same_weights(timm_nano):
    from_timm, _ = convert_checkpoint(timm_nano.state_dict())
    official = {'model': timm_to_official(timm_nano.state_dict()),
                'args': None}
    from_official, report = convert_checkpoint(official)
    assert report['source_format'] == 'official'
    assert from_timm.keys() == from_official.keys()
    for k in from_timm:
        assert torch.equal(from_timm[k], from_official[k]), k
    assert report['arch'] == dict(
        arch=dict(embed_dims=128, depth=12, num_heads=4), patch_size=8)


def test_wrappers_and_dino(timm_nano):
    sd = timm_to_official(timm_nano.state_dict())
    for wrap in ('model', 'model_ema', 'state_dict'):
        _, report = convert_checkpoint({wrap: sd})
        assert report['converted'] == len(sd)
    dino = {f'module.backbone.{k}': v for k, v in sd.items()
            if not k.startswith('head.')}
    state, report = convert_checkpoint(dino)
    assert report['head_tensors'] == 0
    assert not any(k.startswith('head.') for k in state)
    state, report = convert_checkpoint(dino, backbone_only=True)
    assert not any(re.match(r'backbone\.(cls|norm)', k) for k in state)


def test_mismatch_fails_loudly(timm_nano):
    sd = timm_nano.state_dict()
    del sd['blocks.3.mlp.fc1.weight']
    with pytest.raises(CheckpointMismatchError, match='1 missing'):
        convert_checkpoint(sd)
    with pytest.raises(ValueError, match='not an XCiT checkpoint'):
        convert_checkpoint({'conv.weight': torch.zeros(1)})


def test_converter_tool_reproduces_timm_logits(tmp_path, capsys):
    """The whole route at 224 px: a timm XCiT-S12/16 file, the converter
    tool, mmengine's strict load_checkpoint, the same logits. (Logit parity
    of every size and patch: tests/test_models/test_backbones.)"""
    ref = randomize_(timm.create_model('xcit_small_12_p16_224'), 7).eval()
    src = tmp_path / 'timm_s12.pth'
    torch.save(ref.state_dict(), src)
    dst = tmp_path / 'xcit_s12_mm.pth'
    converter = load_tool('tools/model_converters/xcit2mm.py')
    assert converter.main([str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert 'source format: timm' in out and 'missing: 0' in out
    model = build_classifier('s12', 16).eval()
    load_checkpoint(model, str(dst), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert relative_error(model(x, mode='tensor'), ref(x)) <= 1e-5


def _tiny_classifier_ckpt(path):
    model = randomize_(XCiT(TINY_ARCH))
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               model.state_dict().items()}}, path)
    return model


def test_init_cfg_pretrained_counts_and_dense(tmp_path):
    path = str(tmp_path / 'cls.pth')
    src = _tiny_classifier_ckpt(path)
    dense = XCiT(TINY_ARCH, out_type='featmap', out_indices=[1],
                 init_cfg=dict(type='Pretrained', checkpoint=path,
                               prefix='backbone.'))
    counts = dense.load_pretrained(path, prefix='backbone.')
    assert counts['loaded'] == len(dense.state_dict())
    assert counts['missing'] == 0 and counts['unexpected'] == 0
    assert counts['skipped_classification_only'] > 0
    dense.init_weights()
    torch.testing.assert_close(dense.blocks[1].attn.qkv.weight,
                               src.blocks[1].attn.qkv.weight)


def test_init_cfg_pretrained_failures(tmp_path):
    path = str(tmp_path / 'cls.pth')
    _tiny_classifier_ckpt(path)
    # (the one test of a missing pretrained file at this level; through
    # tools/train.py: tests/test_tools/test_bad_input.py)
    with pytest.raises(MissingFileError,
                       match='xcit_convert.convert_checkpoint') as e:
        XCiT(TINY_ARCH, init_cfg=dict(type='Pretrained',
                                      checkpoint=str(tmp_path / 'no.pth'))
             ).init_weights()
    assert e.value.remedy == 'convert-xcit'
    assert e.value.config_keys == ('model.backbone.init_cfg.checkpoint', )
    assert 'tools/model_converters/xcit2mm.py' in explain_exception(e.value)
    with pytest.raises(ValueError, match=r'with another shape.*checkpoint '
                       r'\(1, 1, 32\) vs model \(1, 1, 64\)'):
        XCiT(dict(TINY_ARCH, embed_dims=64),
             init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()
    # a checkpoint that fills almost nothing fails instead of silently passing
    torch.save({'state_dict': {'backbone.pos_embed.token_projection.bias':
                               torch.zeros(32)}}, path)
    with pytest.raises(RuntimeError,
                       match=r'1 of \d+ tensors load.*at least 50%'):
        XCiT(TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=path,
                                      prefix='backbone.')).init_weights()


def test_to_xcit_mm_roundtrip_of_own_format(timm_nano):
    state, _ = convert_checkpoint(timm_nano.state_dict())
    backbone, head, fmt = to_xcit_mm({'state_dict': state})
    assert fmt == 'xcit_mm' and 'fc.weight' in head
    assert len(backbone) + len(head) == len(state)
