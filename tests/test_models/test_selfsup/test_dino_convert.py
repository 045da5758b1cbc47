"""Official DINO XCiT files (built here in the official layout) ->
xcit_mm, and DINO backbones into the fine-tune / dense configs."""
import argparse
from collections import OrderedDict

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from tests.utils import REPO, TINY_ARCH
from xcit_mm.models.selfsup.dino_convert import (
    convert_dino_backbone,
    convert_dino_full_checkpoint,
    dino_param_order,
)
from xcit_mm.utils.errors import CheckpointMismatchError

HEAD = dict(type='xcit_mm.DINOHead', in_channels=32, out_channels=16,
            hidden_channels=24, bottleneck_channels=8)


def tiny_dino(norm_last_layer=False, seed=0):
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='xcit_mm.DINO',
        backbone=dict(type='xcit_mm.XCiT', arch=TINY_ARCH, patch_size=8),
        head=dict(HEAD, norm_last_layer=norm_last_layer)))
    model.init_weights()
    return model


def official_layout(net_sd, wrap='module.'):
    """xcit_mm backbone.* / head.* -> the official DINO network keys."""
    out = OrderedDict()
    for k, v in net_sd.items():
        k = k.replace('backbone.pos_embed.', 'backbone.pos_embeder.')
        out[wrap + k] = v.clone()
    return out


def split(model):
    sd = model.state_dict()
    student = OrderedDict((k, v) for k, v in sd.items()
                          if k.startswith(('backbone.', 'head.')))
    teacher = OrderedDict((k[len('teacher.'):], v) for k, v in sd.items()
                          if k.startswith('teacher.'))
    return student, teacher


def test_backbone_only_file():
    model = tiny_dino()
    student, _ = split(model)
    official = OrderedDict(
        (k[len('backbone.'):].replace('pos_embed.', 'pos_embeder.', 1), v)
        for k, v in student.items() if k.startswith('backbone.'))
    converted, report = convert_dino_backbone(official)
    assert report['source_format'] == 'official'
    assert report['missing'] == report['unexpected'] == 0
    ours = {k: v for k, v in student.items() if k.startswith('backbone.')}
    assert converted.keys() == ours.keys()
    for k in ours:
        torch.testing.assert_close(converted[k], ours[k])
    with pytest.raises(CheckpointMismatchError, match='classification head'):
        convert_dino_backbone(dict(official, **{
            'head.weight': torch.zeros(10, 32), 'head.bias': torch.zeros(10)}))


@pytest.mark.parametrize('norm_last_layer', [True, False])
def test_full_checkpoint_with_optimizer(norm_last_layer):
    source = tiny_dino(norm_last_layer, seed=1)
    student, teacher = split(source)
    with torch.no_grad():  # the teacher differs from the student
        for v in teacher.values():
            if v.is_floating_point():
                v.add_(0.01)
    off_student = official_layout(student)
    off_teacher = official_layout(teacher)
    # DINO's optimizer over the official parameters, a few real steps
    order = dino_param_order(off_student, norm_last_layer)
    params = {k: torch.nn.Parameter(off_student['module.' + k].clone())
              for k in order}
    n_reg = sum(1 for k in order
                if not (k.endswith('.bias') or params[k].dim() == 1))
    groups = [dict(params=[params[k] for k in order[:n_reg]]),
              dict(params=[params[k] for k in order[n_reg:]],
                   weight_decay=0.)]
    official_opt = torch.optim.AdamW(groups, lr=1e-3)
    for _ in range(2):
        for p in params.values():
            p.grad = torch.randn_like(p)
        official_opt.step()
    ckpt = dict(student=off_student, teacher=off_teacher,
                optimizer=official_opt.state_dict(), epoch=7,
                args=argparse.Namespace(norm_last_layer=norm_last_layer),
                dino_loss=dict(center=torch.randn(1, 16)))

    target = tiny_dino(norm_last_layer, seed=2)
    from xcit_mm.engine import DINOOptimWrapperConstructor
    wrapper = DINOOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.04)),
        dict(norm_decay_mult=0., bias_decay_mult=0.,
             custom_keys={'.gamma': dict(decay_mult=0.)}))(target)
    state, report = convert_dino_full_checkpoint(ckpt, target,
                                                 wrapper.optimizer)
    assert report['loaded'] == len(target.state_dict())
    assert state['epoch'] == 7
    target.load_state_dict(state['state_dict'], strict=True)
    for k, v in student.items():
        torch.testing.assert_close(target.state_dict()[k], v)
    for k, v in teacher.items():
        torch.testing.assert_close(target.state_dict()[f'teacher.{k}'], v)
    torch.testing.assert_close(target.dino_loss.center,
                               ckpt['dino_loss']['center'])
    wrapper.optimizer.load_state_dict(state['optimizer'])
    names = {id(p): n for n, p in target.named_parameters()}
    for p, s in wrapper.optimizer.state.items():
        off = names[id(p)].replace('backbone.pos_embed.',
                                   'backbone.pos_embeder.')
        torch.testing.assert_close(s['exp_avg'],
                                   official_opt.state[params[off]]['exp_avg'])
    assert len(wrapper.optimizer.state) == len(order)

    with pytest.raises(CheckpointMismatchError, match='does not fit'):
        other = tiny_dino(norm_last_layer)
        other.head.last_layer = torch.nn.Linear(8, 4)
        convert_dino_full_checkpoint(ckpt, other)


@pytest.mark.parametrize('config', [
    'configs/xcit/xcit-s12-p16_in1k.py',
    'configs/mask_rcnn/mask-rcnn_xcit-s12-p16_fpn_1x_coco.py',
    'configs/upernet/upernet_xcit-s12-p16_8xb2-160k_ade20k-512x512.py',
    'configs/dino/benchmarks/xcit-s12-p16_dino-pre_linear-8xb128-100e_in1k.py',
])
def test_dino_checkpoint_loads_into_downstream_configs(tmp_path, config):
    """A saved DINO state (tools/train.py's layout) fills the backbone of
    the fine-tune, Mask R-CNN, UperNet and linear-probe configs through
    init_cfg with nothing missing."""
    from xcit_mm.models import XCiT
    path = str(tmp_path / 'dino.pth')
    torch.save(dict(state_dict=tiny_dino().state_dict(), meta=dict()), path)
    cfg = Config.fromfile(f'{REPO}/{config}')
    backbone_cfg = dict(cfg.model.backbone)
    backbone_cfg.pop('type')
    backbone_cfg.update(arch=TINY_ARCH, patch_size=8,
                        init_cfg=dict(type='Pretrained', checkpoint=path,
                                      prefix='teacher.backbone.'))
    backbone_cfg.pop('frozen_stages', None)
    backbone = XCiT(**backbone_cfg)
    counts = backbone.load_pretrained(path,
                                      prefix='teacher.backbone.')
    assert counts['missing'] == 0 and counts['unexpected'] == 0
    assert counts['loaded'] == len(backbone.state_dict())
    expected = tiny_dino().state_dict()
    for k, v in backbone.state_dict().items():
        torch.testing.assert_close(v, expected[f'teacher.backbone.{k}'])


def test_class_attention_of_dino_weights(tmp_path):
    """visualize_attention's loader shows the class attention of a DINO
    teacher: from tools/train.py's layout, an official full checkpoint and
    a converted backbone-only file."""
    from xcit_mm.visualization.attention import build_xcit_from_checkpoint
    model = tiny_dino(seed=3)
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.01)  # a teacher that differs from the student
    ours = str(tmp_path / 'ours.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ours)
    student, teacher = split(model)
    official = str(tmp_path / 'official.pth')
    torch.save(dict(student=official_layout(student),
                    teacher=official_layout(teacher), epoch=1), official)
    backbone_only = str(tmp_path / 'backbone.pth')
    converted, _ = convert_dino_backbone(OrderedDict(
        (k[len('backbone.'):].replace('pos_embed.', 'pos_embeder.', 1), v)
        for k, v in teacher.items() if k.startswith('backbone.')))
    torch.save(dict(state_dict=converted), backbone_only)
    cfg = Config(dict(model=dict(backbone=dict(
        type='xcit_mm.XCiT', arch=TINY_ARCH, patch_size=8))))
    x = torch.randn(1, 3, 32, 32)
    maps = []
    for path, key in ((ours, 'teacher'), (official, 'teacher'),
                      (backbone_only, None)):
        xcit, info = build_xcit_from_checkpoint(cfg, path, key)
        assert info['class_attention']
        for k, v in xcit.state_dict().items():
            torch.testing.assert_close(v, teacher[f'backbone.{k}'])
        with torch.no_grad():
            maps.append(xcit.get_attention_maps(x)['cls_attn'])
    assert maps[0].shape == (1, 2, 16)
    torch.testing.assert_close(maps[0], maps[1])
    torch.testing.assert_close(maps[0], maps[2])


def test_fast_forward_schedulers_equals_stepping_every_group():
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS

    from xcit_mm.models.selfsup.dino_convert import fast_forward_schedulers
    cfgs = [
        dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
             end=2, convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=2,
             end=6, convert_to_iter_based=True),
        dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
             eta_min_ratio=10., by_epoch=True, begin=0, end=6,
             convert_to_iter_based=True),
    ]

    def optimizer():
        ps = [torch.nn.Parameter(torch.zeros(2)) for _ in range(4)]
        return torch.optim.AdamW(
            [dict(params=[ps[0]]), dict(params=[ps[1]], weight_decay=0.),
             dict(params=[ps[2]]), dict(params=[ps[3]], weight_decay=0.)],
            lr=2e-3, weight_decay=0.04)

    fast = optimizer()
    states, base = fast_forward_schedulers(cfgs, fast, epoch=3,
                                           iters_per_epoch=5, max_epochs=6)
    slow = optimizer()
    wrapper = OptimWrapper(slow)
    schedulers = [PARAM_SCHEDULERS.build(
        dict(c), default_args=dict(optimizer=wrapper, epoch_length=5))
        for c in cfgs]
    for _ in range(15):
        for s in schedulers:
            s.step()
    for g_fast, g_slow in zip(fast.param_groups, slow.param_groups):
        for name in ('lr', 'weight_decay', 'initial_lr',
                     'initial_weight_decay'):
            assert g_fast[name] == pytest.approx(g_slow[name], rel=1e-12)
    for name in ('lr', 'weight_decay'):
        assert base[name] == pytest.approx(
            wrapper.base_param_settings[name], rel=1e-12)
    for state, s in zip(states, schedulers):
        ref = s.state_dict()
        assert state['last_step'] == ref['last_step']
        assert state['base_values'] == pytest.approx(ref['base_values'])
        assert state['_last_value'] == pytest.approx(ref['_last_value'])
