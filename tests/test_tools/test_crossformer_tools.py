"""The analysis tools with CrossFormer configs: get_flops (the published
FLOPs of CrossFormer-S; a detector), visualize_attention's refusal."""
import os.path as osp

from tests.utils import REPO, load_tool


def test_get_flops_crossformer_s_is_the_published_4_9g():
    tool = load_tool('tools/analysis_tools/get_flops.py')
    r = tool.get_flops(
        osp.join(REPO, 'configs/crossformer/crossformer-s_in1k.py'))
    assert r['kind'] == 'classifier' and r['params_counted'] == 30657394
    assert abs(r['flops'] / 4.9e9 - 1) < 0.02, r['flops']
    assert r['attention_flops'] > 0  # the group attention matmuls


def test_get_flops_detector_any_size():
    tool = load_tool('tools/analysis_tools/get_flops.py')
    r = tool.get_flops(osp.join(
        REPO, 'configs/retinanet/retinanet_crossformer-s_fpn_1x_coco.py'),
        shape=(100, 150))  # padded inside the backbone, groups masked
    assert r['kind'] == 'single-stage detector' and r['flops'] > 0


def test_visualize_attention_says_crossformer_is_not_supported(capsys):
    tool = load_tool('tools/analysis_tools/visualize_attention.py')
    config = osp.join(REPO, 'configs/crossformer/crossformer-s_in1k.py')
    assert tool.main([config, 'none.pth', 'none.jpg', '--out-dir',
                      'unused']) == 1
    assert 'get_attention_maps' in capsys.readouterr().err
