"""Every detection / segmentation config parses, holds the official recipe
and builds (on the meta device: full-size models, no memory, no init), and
its neck and heads run on maps of the backbone's width."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS as MMSEG_MODELS

from tests.utils import REPO, load_config
from xcit_mm.models import XCiTMultiScaleNeck

SIZES = {'t12': ('tiny-12', 192), 's12': ('small-12', 384),
         's24': ('small-24', 384), 'm24': ('medium-24', 512)}
#: Official drop path rates: (Mask R-CNN, UperNet, Semantic FPN).
DROP_PATH = {'t12': (0.0, 0.0, 0.0), 's12': (0.05, 0.05, 0.05),
             's24': (0.1, 0.1, 0.1), 'm24': (0.15, 0.15, 0.2)}
PATTERNS = {
    'mask_rcnn': r'mask-rcnn_xcit-(\w\d\d)-p(\d+)_fpn_(1x|3x)_coco\.py',
    'upernet': r'upernet_xcit-(\w\d\d)-p(\d+)_8xb2-(160k)_ade20k-512x512\.py',
    'sem_fpn': r'fpn_xcit-(\w\d\d)-p(\d+)_8xb2-(80k)_ade20k-512x512\.py',
}
CONFIGS = sorted(
    osp.relpath(p, REPO) for task in PATTERNS
    for p in glob.glob(osp.join(REPO, 'configs', task, '*xcit-*.py')))


def test_every_size_patch_and_schedule_has_a_config():
    names = {osp.basename(c) for c in CONFIGS}
    expected = set()
    for s in SIZES:
        for p in (16, 8):
            for sched in ('1x', '3x'):
                expected.add(f'mask-rcnn_xcit-{s}-p{p}_fpn_{sched}_coco.py')
            expected.add(f'upernet_xcit-{s}-p{p}_8xb2-160k_ade20k-512x512.py')
            expected.add(f'fpn_xcit-{s}-p{p}_8xb2-80k_ade20k-512x512.py')
    assert names == expected


def _schedule(cfg):
    return {s.type: s for s in cfg.param_scheduler}


@pytest.mark.parametrize('config', CONFIGS,
                         ids=[osp.basename(c)[:-3] for c in CONFIGS])
def test_config_recipe_and_build(config):
    task = config.split('/')[1]
    size, patch, sched = re.fullmatch(PATTERNS[task],
                                      osp.basename(config)).groups()
    patch = int(patch)
    arch, width = SIZES[size]
    cfg = load_config(osp.join(REPO, config))

    # ---- the recipe
    backbone = cfg.model.backbone
    assert backbone.type == 'xcit_mm.XCiT'
    assert (backbone.arch, backbone.patch_size) == (arch, patch)
    assert backbone.out_type == 'featmap'
    col = ('mask_rcnn', 'upernet', 'sem_fpn').index(task)
    assert backbone.drop_path_rate == DROP_PATH[size][col]
    assert backbone.init_cfg == dict(
        type='Pretrained', prefix='backbone.',
        checkpoint=f'checkpoints/xcit-{size}-p{patch}_384-dist_backbone.pth')
    assert cfg.sync_bn == 'torch'  # BN -> SyncBN in distributed runs
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs
    assert cfg.auto_scale_lr.base_batch_size == 16
    optim = cfg.optim_wrapper.optimizer
    custom_keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert custom_keys == {'norm': dict(decay_mult=0.)}
    warmup, = [s for s in cfg.param_scheduler if s.type == 'LinearLR']
    pipeline = {t.type: t for t in cfg.test_dataloader.dataset.pipeline}
    if task == 'mask_rcnn':
        assert cfg.default_scope == 'mmdet'
        assert (optim.type, optim.lr, optim.weight_decay) == ('AdamW', 1e-4,
                                                              0.05)
        assert (warmup.start_factor, warmup.end, warmup.by_epoch) == (
            0.001, 500, False)
        steps = _schedule(cfg)['MultiStepLR'].milestones
        epochs = cfg.train_cfg.max_epochs
        assert (epochs, steps) == ((12, [8, 11]) if sched == '1x' else
                                   (36, [27, 33]))
        assert pipeline['Resize'].scale == (1333, 800)
        train = [t.type for t in cfg.train_dataloader.dataset.pipeline]
        assert train[2:4] == ['RandomFlip', 'RandomChoice']  # DETR aug
        assert cfg.val_evaluator.type == 'CocoMetric'
        assert cfg.val_evaluator.metric == ['bbox', 'segm']
        assert cfg.train_dataloader.dataset.type == 'CocoDataset'
        assert cfg.model.roi_head.bbox_roi_extractor.featmap_strides == [
            4, 8, 16, 32]
    else:
        assert cfg.default_scope == 'mmseg'
        assert (optim.type, optim.lr, optim.weight_decay) == ('AdamW', 6e-5,
                                                              0.01)
        assert (warmup.start_factor, warmup.end) == (1e-6, 1500)
        poly = _schedule(cfg)['PolyLR']
        iters = int(sched[:-1]) * 1000
        assert (poly.power, poly.eta_min, poly.begin, poly.end) == (
            1.0, 0.0, 0, iters)
        assert cfg.train_cfg.max_iters == iters
        assert cfg.val_evaluator.type == 'IoUMetric'
        assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
        assert cfg.train_dataloader.dataset.data_root == \
            'data/ade/ADEChallengeData2016'
        assert pipeline['Resize'].scale == (2048, 512)
        train = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
        assert train['RandomResize'].ratio_range == (0.5, 2.0)
        assert train['RandomCrop'].crop_size == (512, 512)
        assert train['RandomCrop'].cat_max_ratio == 0.75
        assert 'PhotoMetricDistortion' in train
        assert cfg.model.test_cfg.mode == 'whole'

    # ---- build the full-size model on the meta device and run the neck and
    # heads on (B, C, Hp, Wp) maps: every width in the chain must agree
    init_default_scope(cfg.default_scope)
    registry = MMDET_MODELS if task == 'mask_rcnn' else MMSEG_MODELS
    with torch.device('meta'):
        model = registry.build(cfg.model).eval()
        assert model.backbone.embed_dims == width
        assert model.backbone.out_indices == (
            [3, 5, 7, 11] if arch.endswith('12') else [7, 11, 15, 23])
        assert not hasattr(model.backbone, 'cls_attn_blocks')
        adapter = model.neck[0] if task != 'upernet' else model.neck
        assert isinstance(adapter, XCiTMultiScaleNeck)
        assert adapter.patch_size == patch
        maps = [torch.empty(1, width, 48 // patch * 2, 80 // patch * 2)] * 4
        feats = model.neck(maps)
        if task == 'mask_rcnn':
            assert len(feats) == 5 and feats[0].shape[1] == 256
            cls_scores, _ = model.rpn_head(feats)
            assert len(cls_scores) == 5
        else:
            assert model.decode_head(feats).shape[:2] == (1, 150)
            if task == 'upernet':
                assert model.decode_head.channels == 512
                assert model.auxiliary_head.in_index == 2
                assert model.auxiliary_head(feats).shape[1] == 150
            else:
                assert model.neck[1].out_channels == width
                assert model.decode_head.channels == 128
    # plain BN in a single-process build
    assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                   for m in model.modules())


@pytest.mark.parametrize('config', [
    'configs/upernet/upernet_xcit-s12-p16_8xb2-160k_ade20k-512x512.py',
    'configs/sem_fpn/fpn_xcit-s12-p16_8xb2-80k_ade20k-512x512.py'
])
def test_seg_lr_follows_the_official_warmup_times_poly(config):
    """lr(t) = 6e-5 (1 - t/T) x the mmcv 1.x linear warm-up factor
    1e-6 + (1 - 1e-6) t / 1500 (t < 1500), as in the official runs."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = load_config(osp.join(REPO, config))
    total = cfg.train_cfg.max_iters
    optim = build_optim_wrapper(torch.nn.Linear(1, 1), cfg.optim_wrapper)
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optim))
                  for s in cfg.param_scheduler]
    for t in range(2000):
        warmup = 1e-6 + (1 - 1e-6) * t / 1500 if t < 1500 else 1.
        expected = 6e-5 * (1 - t / total) * warmup
        assert optim.get_lr()['lr'][0] == pytest.approx(expected, rel=1e-3)
        for s in schedulers:
            s.step()
