"""tools/analysis_tools: get_flops on classification / segmentation /
detection configs, and a CI-sized run of the benchmark."""
import json

import pytest

from tests.test_utils.test_flops import xcit_flops_by_hand
from tests.utils import REPO, load_tool, run_tool

BASE_MODEL = f'{REPO}/configs/_base_/models/xcit-s12-p16.py'
TINY = 'dict(_delete_=True, embed_dims=32, depth=4, num_heads=2)'
GET_FLOPS = 'tools/analysis_tools/get_flops.py'


def _write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def classifier_cfg(tmp_path):
    return _write(
        tmp_path / 'cls.py', f"""
_base_ = ['{BASE_MODEL}']
model = dict(backbone=dict(arch={TINY}), head=dict(in_channels=32,
                                                   num_classes=10))
""")


def test_get_flops_classifier_equals_hand_count(classifier_cfg):
    tool = load_tool(GET_FLOPS)
    r = tool.get_flops(classifier_cfg, (64, 96))
    assert r['kind'] == 'classifier' and r['scope'] == 'mmpretrain'
    # backbone by hand + the linear head (32 -> 10)
    assert r['flops'] == xcit_flops_by_hand(32, 4, 2, 64, 96) + 32 * 10
    assert r['params_counted'] == r['params_model']
    backbone = tool.get_flops(classifier_cfg, (64, 96), backbone_only=True)
    assert backbone['flops'] == xcit_flops_by_hand(32, 4, 2, 64, 96)
    assert backbone['params_counted'] == r['params_model'] - (32 * 10 + 10)


def test_get_flops_dense_configs(tmp_path):
    tool = load_tool(GET_FLOPS)
    backbone = (f"backbone=dict(_delete_=True, type='xcit_mm.XCiT', "
                f"arch={TINY}, out_type='featmap', out_indices=[0, 1, 2, 3])")
    seg = _write(
        tmp_path / 'seg.py', f"""
_base_ = 'mmseg::_base_/models/upernet_r50.py'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(pretrained=None, {backbone},
    decode_head=dict(in_channels=[32] * 4, channels=16, num_classes=5,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=32, channels=16, num_classes=5,
                        norm_cfg=norm_cfg))
""")
    det = _write(
        tmp_path / 'det.py', f"""
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
model = dict({backbone},
    neck=dict(in_channels=[32] * 4, out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16))
""")
    bb = xcit_flops_by_hand(32, 4, 2, 64, 64, cls_token=False)
    r = tool.get_flops(seg, (64, 64))
    assert r['kind'] == 'segmentor' and 'auxiliary' in r['counted']
    assert r['flops'] > bb and r['params_counted'] < r['params_model']
    r = tool.get_flops(det, (64, 64))
    assert r['kind'] == 'two-stage detector' and 'RoI' in r['counted']
    assert r['flops'] > bb and r['params_counted'] < r['params_model']
    r = tool.get_flops(det, (64, 64), backbone_only=True)
    assert r['flops'] == bb and r['kind'] == 'backbone'


def test_get_flops_cli(classifier_cfg, tmp_path):
    out = tmp_path / 'flops.json'
    proc = run_tool([GET_FLOPS, classifier_cfg, '--shape', '64', '96',
                     '--json', str(out)], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'attention matmuls' in proc.stdout
    assert 'backbone + neck + head' in proc.stdout
    r = json.loads(out.read_text())
    assert r['flops'] == xcit_flops_by_hand(32, 4, 2, 64, 96) + 32 * 10
    assert r['input_shape'] == [1, 3, 64, 96]


def test_get_flops_errors(tmp_path, capsys):
    tool = load_tool(GET_FLOPS)
    assert tool.main([str(tmp_path / 'missing.py')]) == 1
    assert 'missing.py does not exist' in ' '.join(
        capsys.readouterr().err.split())
    cfg = _write(tmp_path / 'nomodel.py', 'x = 1\n')
    assert tool.main([cfg]) == 1
    assert 'no `model` entry' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args([cfg, '--shape', '1', '2', '3'])


def test_benchmark_smoke(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run_tool([
        'tools/analysis_tools/benchmark.py', '--mode', 'all', '--device',
        'cpu', '--arch', '32,2,2', '--img-size', '32', '--batch', '2',
        '--warmup', '1', '--iters', '2', '--sizes', '32', '64',
        '--scaling-iters', '1', '--threads', '1', '--vit',
        'deit_tiny_patch16_224', '--json', str(out)
    ], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for text in ('| timm | train |', '| xcit_mm | train |',
                 '| timm | infer |', '| xcit_mm | infer |', 'Scaling',
                 'growth exponent'):
        assert text in proc.stdout, text
    r = json.loads(out.read_text())
    assert r['env']['device'] == 'cpu' and r['env']['threads'] == 1
    (row, ) = r['compare']['rows']
    assert row['parity_rel_err']['xcit_mm'] < 1e-5  # same weights
    for phase in ('train', 'infer'):
        for model in ('timm', 'xcit_mm'):
            v = row[phase][model]
            assert len(v['wall']) == 2 and v['img_s'] > 0
            assert v['cpu_img_s'] > 0 and v['ratio_paired'] > 0
            assert v['peak_mib'] is None or v['peak_mib'] > 0
    assert row['train']['timm']['optimizer'] in ('fused', 'foreach', 'loop')
    scaling = r['scaling']
    assert [s['img_size'] for s in scaling['rows']] == [32, 64]
    assert set(scaling['rows'][0]['models']) == {'xcit_mm', 'timm', 'vit'}
    assert set(scaling['growth']) == {'xcit_mm', 'timm', 'vit'}
    for v in scaling['rows'][-1]['models'].values():
        assert v['ms'] > 0 and v['cpu_ms'] > 0
        if v.get('peak_mib') is not None:
            assert 0 <= v['activation_mib'] <= v['peak_mib']
