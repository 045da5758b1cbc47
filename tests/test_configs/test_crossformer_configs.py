"""Every CrossFormer config parses, holds the official recipe and builds its
full-size model (on the meta device) with the published parameter count."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.registry import DefaultScope

from tests.utils import REPO, load_config
from xcit_mm.models import CrossFormer

#: Published parameter counts (M) of the official models.
PUBLISHED = {
    'crossformer/crossformer-t_in1k.py': 27.8,
    'crossformer/crossformer-s_in1k.py': 30.7,
    'crossformer/crossformer-b_in1k.py': 52.0,
    'crossformer/crossformer-l_in1k.py': 92.0,
    'crossformer/crossformer-pp-s_in1k.py': 23.3,
    'crossformer/crossformer-pp-b_in1k.py': 52.0,
    'crossformer/crossformer-pp-l_in1k.py': 92.0,
    'crossformer/crossformer-pp-h_in1k.py': 96.0,
    'mask_rcnn/mask-rcnn_crossformer-s_fpn_1x_coco.py': 50.2,
    'mask_rcnn/mask-rcnn_crossformer-s_fpn_3x_coco.py': 50.2,
    'mask_rcnn/mask-rcnn_crossformer-b_fpn_1x_coco.py': 71.5,
    'mask_rcnn/mask-rcnn_crossformer-b_fpn_3x_coco.py': 71.5,
    'retinanet/retinanet_crossformer-s_fpn_1x_coco.py': 40.8,
    'retinanet/retinanet_crossformer-b_fpn_1x_coco.py': 62.1,
    'upernet/upernet_crossformer-s_8xb2-160k_ade20k-512x512.py': 62.3,
    'upernet/upernet_crossformer-b_8xb2-160k_ade20k-512x512.py': 83.6,
    'upernet/upernet_crossformer-l_8xb2-160k_ade20k-512x512.py': 125.5,
    'sem_fpn/fpn_crossformer-s_8xb4-80k_ade20k-512x512.py': 34.3,
    'sem_fpn/fpn_crossformer-b_8xb4-80k_ade20k-512x512.py': 55.6,
    'sem_fpn/fpn_crossformer-l_8xb4-80k_ade20k-512x512.py': 95.4,
}
DROP_PATH = dict(tiny=0.1, small=0.2, base=0.3, large=0.5, **{
    'pp-small': 0.2, 'pp-base': 0.3, 'pp-large': 0.5, 'pp-huge': 0.5})
CONFIGS = sorted(
    osp.relpath(p, osp.join(REPO, 'configs'))
    for p in glob.glob(osp.join(REPO, 'configs', '*', '*crossformer-*.py'))
    if 'demo' not in p)


def test_every_published_model_has_a_config():
    assert set(CONFIGS) == set(PUBLISHED)


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_with_the_published_size(config):
    cfg = load_config(osp.join(REPO, 'configs', config))
    scope = cfg.default_scope
    backbone = cfg.model.backbone
    assert backbone.type == 'xcit_mm.CrossFormer'
    assert backbone.drop_path_rate == DROP_PATH[backbone.arch]
    dense = scope != 'mmpretrain'
    assert backbone.final_norm is not dense
    if dense:
        assert tuple(backbone.out_indices) == (0, 1, 2, 3)
        assert backbone.lda_mode == 'interval'
        assert backbone.init_cfg.checkpoint.endswith('_backbone.pth')
        assert cfg.auto_scale_lr.base_batch_size == \
            8 * cfg.train_dataloader.batch_size
    else:
        optim = cfg.optim_wrapper
        assert (optim.optimizer.lr, optim.optimizer.weight_decay,
                optim.clip_grad.max_norm) == (1e-3, 0.05, 5.0)
        assert cfg.train_cfg.max_epochs == 300
        assert cfg.param_scheduler[0].end == 20
        assert cfg.train_dataloader.sampler.type == 'DefaultSampler'
    from importlib import import_module
    registry = import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope), torch.device('meta'):
        model = registry.build(cfg.model)
    assert isinstance(model.backbone, CrossFormer)
    n = sum(p.numel() for p in model.parameters())
    assert round(n / 1e6, 1) == PUBLISHED[config]
