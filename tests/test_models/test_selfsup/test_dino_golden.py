"""xcit_mm's DINO against golden outputs of facebookresearch/dino.

The fixture ``tests/data/golden/dino.npz`` (written by
``tools/misc/official_golden.py dino``, see ``tools/misc/golden/dino.py``)
holds the official head, loss, schedules, clipping and two epochs of the
official ``train_one_epoch``; each is compared within 1e-4 relative.
"""
import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseDataPreprocessor
from mmengine.optim import OptimWrapper
from mmengine.registry import PARAM_SCHEDULERS, init_default_scope

from tests.utils import REPO, TINY_ARCH
from tests.utils.configs import load_config
from tests.utils.golden import assert_golden, load_golden
from xcit_mm.engine import DINOOptimWrapperConstructor
from xcit_mm.models.heads import DINOHead
from xcit_mm.models.losses import DINOLoss
from xcit_mm.models.selfsup.dino import clip_grad_per_param_, teacher_momentum

CONFIG = osp.join(REPO, 'configs/dino/dino_xcit-s12-p16_8xb128-300e_in1k.py')


@pytest.fixture(scope='module')
def golden():
    return load_golden('dino')


def xcit_mm_head(meta, use_bn=False, norm_last_layer=True):
    h = meta['head']
    return DINOHead(h['in_dim'], h['out_dim'], h['hidden_dim'],
                    h['bottleneck_dim'], h['nlayers'], use_bn=use_bn,
                    norm_last_layer=norm_last_layer)


def sub(tensors, prefix):
    return {k[len(prefix):]: v for k, v in tensors.items()
            if k.startswith(prefix)}


@pytest.mark.parametrize('name', ['head', 'head_bn'])
def test_head(golden, name):
    params, inputs, outputs, meta = golden
    head = xcit_mm_head(meta, use_bn=name == 'head_bn')
    head.load_state_dict(sub(params, f'{name}.'), strict=True)
    with torch.no_grad():
        assert_golden(head.eval()(inputs['head']), outputs[name], what=name)


def test_loss_three_iterations_with_centre(golden):
    params, inputs, outputs, meta = golden
    L = meta['loss']
    loss = DINOLoss(L['out_dim'], L['student_temp'], L['teacher_temp'],
                    L['warmup_teacher_temp'], L['warmup_teacher_temp_epochs'],
                    L['center_momentum'])
    for i, epoch in enumerate(meta['loss_epochs']):
        s = inputs[f'loss.{i}.student'].chunk(L['ncrops'])
        t = inputs[f'loss.{i}.teacher'].chunk(2)
        value, _ = loss(s, t, epoch)
        assert_golden(value, outputs[f'loss.{i}'], what=f'loss {i}')
        assert_golden(loss.center, outputs[f'loss.{i}.center'],
                      what=f'centre {i}')


def build_optim_wrapper(optim_cfg, model):
    """The config's optim_wrapper, built as the Runner builds it."""
    optim_cfg = copy.deepcopy(optim_cfg)
    optim_cfg.pop('constructor')
    paramwise = optim_cfg.pop('paramwise_cfg', None)
    return DINOOptimWrapperConstructor(optim_cfg, paramwise)(model)


def config_schedules(cfg, iters_per_epoch):
    """Per-iteration lr and weight decay (of a decayed group) that the
    config's optimizer and parameter schedulers give, as mmengine's
    ParamSchedulerHook steps them."""
    init_default_scope('mmpretrain')
    model = nn.Sequential(nn.Linear(2, 2))
    wrapper = build_optim_wrapper(cfg.optim_wrapper, model)
    schedulers = [PARAM_SCHEDULERS.build(
        copy.deepcopy(s), default_args=dict(optimizer=wrapper,
                                            epoch_length=iters_per_epoch))
        for s in cfg.param_scheduler]
    group = next(g for g in wrapper.param_groups if g['weight_decay'] > 0)
    lr, wd = [], []
    for _ in range(cfg.train_cfg.max_epochs * iters_per_epoch):
        lr.append(group['lr'])
        wd.append(group['weight_decay'])
        for s in schedulers:
            s.step()
    return torch.tensor(lr, dtype=torch.float64), torch.tensor(
        wd, dtype=torch.float64)


def test_config_schedules_are_dinos(golden):
    """lr (warm-up from 0), weight decay, teacher momentum and temperature
    of configs/dino at every iteration / epoch."""
    _, _, outputs, meta = golden
    S = meta['schedule']
    cfg = load_config(CONFIG)
    assert cfg.optim_wrapper.optimizer.lr == S['lr']
    assert cfg.optim_wrapper.optimizer.weight_decay == S['weight_decay']
    assert cfg.train_cfg.max_epochs == S['epochs']
    lr, wd = config_schedules(cfg, S['niter_per_ep'])
    official_lr = outputs['schedule.lr']
    assert lr[0] == official_lr[0] == 0  # DINO's warm-up starts at 0
    assert_golden(lr, official_lr, what='lr')
    # value by value, the small warm-up values included
    assert ((lr[1:] - official_lr[1:]).abs() <=
            1e-6 * official_lr[1:].abs()).all()
    assert_golden(wd, outputs['schedule.wd'], what='weight decay')
    n = len(lr)
    momentum = torch.tensor([
        teacher_momentum(it, n, cfg.model.momentum, cfg.model.end_momentum)
        for it in range(n)], dtype=torch.float64)
    assert_golden(momentum, outputs['schedule.momentum'], what='momentum')
    loss = DINOLoss(**{k: v for k, v in cfg.model.loss.items()
                       if k != 'type'})
    temps = torch.tensor([loss.teacher_temp_at(e) for e in range(n // 3)],
                         dtype=torch.float64)
    assert_golden(temps, outputs['schedule.teacher_temp'],
                  what='teacher temperature')


def test_per_parameter_clipping(golden):
    params, inputs, outputs, meta = golden
    grads = [inputs[f'clip.{k}'].clone() for k in meta['clip_names']]
    ps = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = g
    norms = clip_grad_per_param_(ps, meta['clip'])
    assert_golden(norms, outputs['clip.norms'], what='norms')
    for k, p in zip(meta['clip_names'], ps):
        assert_golden(p.grad, outputs[f'clip.{k}'], what=k)


def test_train_step_is_official_train_one_epoch(golden):
    """Two epochs of two iterations: loss with the centre, per-parameter
    clipping, the last layer frozen in epoch 0 only, AdamW with DINO's
    lr / weight-decay schedules, EMA teacher. The backbone is the identity
    on both sides (the views are feature vectors)."""
    from mmpretrain.registry import MODELS
    params, inputs, outputs, meta = golden
    T, H = meta['step'], meta['head']
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(
        type='xcit_mm.DINO',
        backbone=dict(type='xcit_mm.XCiT', arch=TINY_ARCH),
        head=dict(type='xcit_mm.DINOHead', in_channels=H['in_dim'],
                  out_channels=H['out_dim'], hidden_channels=H['hidden_dim'],
                  bottleneck_channels=H['bottleneck_dim'],
                  num_layers=H['nlayers'], norm_last_layer=False),
        loss=dict(type='xcit_mm.DINOLoss',
                  warmup_teacher_temp=T['warmup_teacher_temp'],
                  teacher_temp=T['teacher_temp'],
                  warmup_teacher_temp_epochs=T['warmup_teacher_temp_epochs']),
        momentum=T['momentum_teacher'], clip_grad=T['clip_grad'],
        freeze_last_layer=T['freeze_last_layer']))
    model.backbone = nn.Identity()
    model.teacher['backbone'] = nn.Identity()
    model.data_preprocessor = BaseDataPreprocessor()
    model.head.load_state_dict(sub(params, 'step.'), strict=True)
    model.copy_student_to_teacher()

    cfg = load_config(CONFIG)  # the config's optimizer and schedulers
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.optimizer.lr = T['lr']
    wrapper = build_optim_wrapper(optim_cfg, model)
    assert isinstance(wrapper, OptimWrapper)
    spans = dict(LinearWarmupLR=(0, T['warmup_epochs']),
                 LinearLR=(0, T['warmup_epochs']),
                 CosineAnnealingLR=(T['warmup_epochs'], T['epochs']),
                 CosineAnnealingParamScheduler=(0, T['epochs']))
    schedulers = []
    for s in copy.deepcopy(cfg.param_scheduler):
        s.begin, s.end = spans[s.type.split('.')[-1]]
        if 'eta_min' in s:
            s.eta_min = T['min_lr']
        schedulers.append(PARAM_SCHEDULERS.build(s, default_args=dict(
            optimizer=wrapper, epoch_length=T['niter_per_ep'])))

    n = T['niter_per_ep']
    max_iters = T['epochs'] * n
    for epoch in range(T['epochs']):
        losses = []
        for it in range(n):
            model.set_train_progress(epoch * n + it, max_iters, n)
            views = [inputs[f'step.{epoch}.{it}.view{v}']
                     for v in range(T['ncrops'])]
            log = model.train_step(dict(inputs=views, data_samples=None),
                                   wrapper)
            losses.append(log['loss'])
            for s in schedulers:
                s.step()
        assert_golden(torch.stack(losses).mean(),
                      outputs[f'step.{epoch}.mean_loss'],
                      what=f'epoch {epoch} loss')
        for k, v in model.head.state_dict().items():
            assert_golden(v, outputs[f'step.{epoch}.student.{k}'],
                          what=f'epoch {epoch} student {k}')
    for k, v in model.teacher['head'].state_dict().items():
        assert_golden(v, outputs[f'step.teacher.{k}'], what=f'teacher {k}')
    assert_golden(model.dino_loss.center, outputs['step.center'],
                  what='centre')
