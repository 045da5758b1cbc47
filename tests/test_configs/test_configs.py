"""Every config under configs/ parses and builds its model; the ImageNet
recipe is the official one.

Models are built on the meta device (no memory, no init), so every config
builds with its *real* architecture, large-24 included, in milliseconds. The
classification configs' XCiT must have exactly timm's parameter count for
the (arch, patch) in the config's name. Distillation configs get a tiny
teacher (timm test_resnet); the default RegNetY-16GF teacher is built for
one config. Dense (mmdet / mmseg) configs are built generically with their
library's registry."""
import glob
import os.path as osp
import re
from importlib import import_module

import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from tests.utils import REPO, load_config, tiny_teacher_cfg

CONFIGS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                       recursive=True) if '/_base_/' not in p)
CLS_NAME = re.compile(
    r'xcit-(n12|t12|t24|s12|s24|m24|l24)-p(16|8)_in1k(-dist)?(-384px)?\.py$')
STEMS = dict(n12='nano_12', t12='tiny_12', t24='tiny_24', s12='small_12',
             s24='small_24', m24='medium_24', l24='large_24')
#: Stochastic depth per size (XCiT paper, appendix).
DROP_PATH = dict(n12=0.0, t12=0.0, t24=0.05, s12=0.05, s24=0.1, m24=0.15,
                 l24=0.25)


def build_model(cfg: Config, teacher=None) -> torch.nn.Module:
    """Build cfg.model with its library's registry, as the Runner does."""
    scope = cfg.get('default_scope', 'mmpretrain')
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if teacher is not None and 'teacher' in model_cfg:
        model_cfg.teacher = teacher
    registry = import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        with torch.device('meta'):
            return registry.build(model_cfg)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_all_classification_configs_exist():
    names = {osp.basename(c) for c in CONFIGS}
    for a in STEMS:
        for p in (16, 8):
            for suffix in ('', '-dist', '-dist-384px'):
                assert f'xcit-{a}-p{p}_in1k{suffix}.py' in names
    assert 'xcit-digits_demo.py' in names


def check_runtime(path: str, cfg: Config) -> None:
    """The config names xcit_mm's runtime (the snippets keep their
    library's: importing xcit_mm changes nothing for them)."""
    if '_snippets_' in path:
        assert 'runner_type' not in cfg
        return
    assert cfg.runner_type == 'xcit_mm.Runner'
    assert cfg.train_cfg.type in ('xcit_mm.ResumableEpochBasedTrainLoop',
                                  'xcit_mm.ResumableIterBasedTrainLoop')
    assert cfg.default_hooks.checkpoint.type == 'xcit_mm.AtomicCheckpointHook'
    hooks = [h.type for h in cfg.default_hooks.values() if h] + [
        h.type for h in cfg.get('custom_hooks', [])]
    assert 'xcit_mm.NonFiniteLossHook' in hooks
    assert 'xcit_mm.CheckpointMatchHook' in hooks
    assert 'xcit_mm.PreemptionHook' in hooks
    for loader in ('train_dataloader', 'test_dataloader'):
        if cfg.get(loader) is None:  # DINO pre-training: no test split
            continue
        pipeline = cfg[loader].dataset.pipeline
        assert pipeline[0].type == 'xcit_mm.LoadImageFromFile', loader


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses_and_builds(path):
    cfg = load_config(osp.join(REPO, path))
    assert cfg.get('default_scope') in ('mmpretrain', 'mmdet', 'mmseg')
    check_runtime(path, cfg)
    classes = cfg.model.get('head', {}).get('num_classes', 1000)
    model = build_model(cfg, teacher=tiny_teacher_cfg(classes))
    match = CLS_NAME.search(path)
    if match is None:
        return
    arch, patch, dist, hi_res = match.groups()
    ref_name = f'xcit_{STEMS[arch]}_p{patch}_{384 if hi_res else 224}' \
        + ('_dist' if dist else '')
    with torch.device('meta'):
        ref = timm.create_model(ref_name.replace('_dist', ''))
    assert n_params(model) == n_params(ref), ref_name
    backbone = cfg.model.backbone
    assert backbone.patch_size == int(patch)
    assert backbone.drop_path_rate == DROP_PATH[arch]
    assert type(model).__name__ == ('DistillImageClassifier'
                                    if dist else 'ImageClassifier')
    if dist:
        assert type(model.teacher).__name__ == 'TimmClassifier'
        assert cfg.model.teacher.model_name == 'regnety_160'
        assert type(model.head).__name__ == 'DistillClsHead'
        assert (model.head.alpha, model.head.distill_loss.kd_type) == (
            0.5, 'hard')
    size = 384 if hi_res else 224
    train_crop = cfg.train_dataloader.dataset.pipeline[1]
    assert (train_crop.type, train_crop.scale) == ('RandomResizedCrop', size)
    test_ops = {t.type: t for t in cfg.test_dataloader.dataset.pipeline}
    # full crop (ratio 1.0): the short side is resized to the crop size
    assert test_ops['ResizeEdge'].scale == test_ops['CenterCrop'].crop_size \
        == size
    if hi_res:
        assert cfg.load_from == \
            f'work_dirs/xcit-{arch}-p{patch}_in1k-dist/epoch_400.pth'
        assert cfg.train_cfg.max_epochs == 30


def test_default_teacher_is_regnety_16gf():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/xcit/xcit-s12-p16_in1k-dist.py'))
    model = build_model(cfg)
    with torch.device('meta'):
        ref = timm.create_model('regnety_160')
    assert n_params(model.teacher) == n_params(ref)  # 83.6M


def test_imagenet_recipe_is_the_official_one():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/xcit/xcit-s12-p16_in1k.py'))
    train = cfg.train_dataloader
    assert train.batch_size == 128
    assert train.sampler.type == 'RepeatAugSampler'
    ops = {t.type: t for t in train.dataset.pipeline}
    assert ops['RandomResizedCrop'].interpolation == 'bicubic'
    ra = ops['RandAugment']
    assert (ra.policies, ra.num_policies, ra.magnitude_level, ra.total_level,
            ra.magnitude_std) == ('timm_increasing', 2, 9, 10, 0.5)
    assert ops['RandomErasing'].erase_prob == 0.25
    assert [(a.type, a.alpha) for a in cfg.model.train_cfg.augments] == \
        [('Mixup', 0.8), ('CutMix', 1.0)]
    assert cfg.model.head.loss.label_smooth_val == 0.1
    optim = cfg.optim_wrapper.optimizer
    assert (optim.type, optim.lr, optim.weight_decay) == ('AdamW', 1e-3,
                                                          0.05)
    assert cfg.auto_scale_lr.base_batch_size == 1024  # 5e-4 per 512
    assert cfg.train_cfg.max_epochs == 400
    ema, = cfg.custom_hooks
    assert ema.type == 'EMAHook' and 1 - ema.momentum == 0.99996


def test_lr_schedule_warms_up_from_1e6_and_ends_at_1e5():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/xcit/xcit-s12-p16_in1k.py'))
    param = torch.nn.Parameter(torch.zeros(1))
    optim = build_optim_wrapper(torch.nn.Linear(1, 1), dict(
        optimizer=cfg.optim_wrapper.optimizer))
    optim.optimizer.param_groups[0]['params'] = [param]
    epoch_len, epochs = 4, cfg.train_cfg.max_epochs
    schedulers = []
    for s in cfg.param_scheduler:
        s = dict(s)
        s.setdefault('end', epochs)  # what the Runner fills in
        schedulers.append(PARAM_SCHEDULERS.build(
            s, default_args=dict(optimizer=optim, epoch_length=epoch_len)))
    lrs = []
    for _ in range(epochs * epoch_len):
        lrs.append(optim.get_lr()['lr'][0])
        optim.step()  # no gradients: only keeps torch's call order
        for s in schedulers:
            s.step()
    assert lrs[0] == pytest.approx(1e-6)
    assert max(lrs) == pytest.approx(1e-3, rel=1e-3)
    warm = 5 * epoch_len  # iterations of the 5 warm-up epochs
    assert lrs[:warm] == sorted(lrs[:warm])  # rising during warm-up ...
    assert lrs[warm] == pytest.approx(1e-3, rel=1e-3)  # ... to the peak
    assert lrs[warm:] == sorted(lrs[warm:], reverse=True)  # then cosine
    assert lrs[-1] == pytest.approx(1e-5, rel=1e-2)


def test_weight_decay_exemptions():
    """temperature, cls_token, gammas, norms and biases get no decay; every
    Linear / Conv weight (pos-embed projection included) does."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/xcit/xcit-s12-p16_in1k.py'))
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model.copy()
    model_cfg.backbone.arch = dict(embed_dims=32, depth=2, num_heads=2)
    model_cfg.head.in_channels = 32
    model = MODELS.build(model_cfg)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g['weight_decay'] for g in optim.param_groups
             for p in g['params']}
    names = dict(model.named_parameters())
    exempt = {n for n, p in names.items() if decay[id(p)] == 0}
    expected = {
        n for n, p in names.items()
        if n.endswith(('.temperature', 'cls_token', '.bias')) or re.search(
            r'\.gamma[123]$', n) or 'norm' in n or '.bn.' in n
        or re.search(r'patch_embed\.proj\.\d+\.1\.', n)
    }
    assert exempt == expected
    assert all(decay[id(p)] == 0.05 for n, p in names.items()
               if n not in expected)
    assert 'backbone.pos_embed.token_projection.weight' not in exempt
    assert any(n.endswith('.temperature') for n in exempt)
    assert any(n.endswith('.gamma3') for n in exempt)
