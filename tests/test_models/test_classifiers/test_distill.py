"""DistillImageClassifier: the DeiT-style loss, the frozen teacher kept out
of parameters / state_dict / optimizer / EMA, teacher checkpoint loading."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.model import ExponentialMovingAverage
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from tests.utils import TINY_ARCH, tiny_teacher_cfg
from xcit_mm.cli import explain_exception
from xcit_mm.models import DistillImageClassifier
from xcit_mm.utils.errors import (
    CheckpointMismatchError,
    ConfigError,
    MissingFileError,
)

K = 5


def tiny_cfg(alpha=0.5, distill_loss=None, **kwargs) -> dict:
    head = dict(type='xcit_mm.DistillClsHead', num_classes=K, in_channels=32,
                alpha=alpha,
                loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                          mode='original'))
    if distill_loss is not None:
        head['distill_loss'] = distill_loss
    cfg = dict(
        type='xcit_mm.DistillImageClassifier',
        backbone=dict(type='xcit_mm.XCiT', arch=TINY_ARCH, patch_size=8),
        head=head,
        teacher=tiny_teacher_cfg(K),
        train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8),
                                 dict(type='CutMix', alpha=1.0)]),
        data_preprocessor=dict(num_classes=K, mean=[127.5] * 3,
                               std=[60.] * 3, to_rgb=True))
    cfg.update(kwargs)
    return cfg


def build(**kwargs) -> DistillImageClassifier:
    init_default_scope('mmpretrain')
    return MODELS.build(tiny_cfg(**kwargs))


def augmented_batch(model, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = dict(
        inputs=[torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8,
                              generator=g) for _ in range(b)],
        data_samples=[DataSample().set_gt_label(i % K) for i in range(b)])
    torch.manual_seed(seed)  # Mixup / CutMix draw from torch's RNG
    return model.data_preprocessor(data, training=True)


@pytest.mark.parametrize('kd_type,tau,alpha', [('hard', 1.0, 0.5),
                                               ('soft', 2.0, 0.3)])
def test_loss_matches_hand_computation(kd_type, tau, alpha):
    model = build(alpha=alpha, distill_loss=dict(
        type='xcit_mm.DistillationLoss', kd_type=kd_type, tau=tau))
    model.train()
    data = augmented_batch(model)
    x, samples = data['inputs'], data['data_samples']
    assert 'gt_score' in samples[0]  # mixed targets reached the head
    losses = model(x, samples, mode='loss')

    with torch.no_grad():
        s = model.head(model.extract_feat(x))  # same batch, same BN stats
        t = model.teacher(x, mode='tensor')  # the *same* augmented input
    y = torch.stack([d.gt_score for d in samples])
    y = y * 0.9 + 0.1 / K  # label smoothing on the mixed target
    ce = -(y * F.log_softmax(s, 1)).sum(1).mean()
    if kd_type == 'hard':
        kd = F.cross_entropy(s, t.argmax(1))
    else:
        p_t = F.softmax(t / tau, 1)
        kd = (p_t * (p_t.log() - F.log_softmax(s / tau, 1))).sum() \
            * tau**2 / s.numel()
    assert losses['loss_cls'].item() == pytest.approx(
        (1 - alpha) * ce.item(), rel=1e-5)
    assert losses['loss_distill'].item() == pytest.approx(
        alpha * kd.item(), rel=1e-5)


def test_forward_backward_teacher_frozen_and_hidden():
    model = build()
    model.train()
    assert not model.teacher.training  # train() never wakes the teacher
    n_teacher = len(list(model.teacher.parameters()))
    assert n_teacher > 0
    teacher_ids = {id(p) for p in model.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in model.parameters()}
    assert not any('teacher' in k or k.startswith('model.')
                   for k in model.state_dict())
    before = copy.deepcopy(model.teacher.state_dict())

    data = augmented_batch(model)
    losses = model(**data, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is not None for p in model.backbone.parameters()
               if p.requires_grad)
    assert all(p.grad is None for p in model.teacher.parameters())
    # teacher BN statistics do not move (eval mode)
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, before[k]), k

    # the optimizer mmengine builds holds the student only
    optim = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)))
    in_optim = {id(p) for g in optim.param_groups for p in g['params']}
    assert in_optim == {id(p) for p in model.parameters()}

    # predict works without the teacher
    model.eval()
    preds = model(data['inputs'], mode='predict')
    assert preds[0].pred_score.shape == (K, )


def test_teacher_follows_to_and_is_shared_by_ema_copy():
    model = build()
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in model.teacher.parameters())
    ema = ExponentialMovingAverage(model, momentum=4e-5)
    assert ema.module.teacher is model.teacher  # no duplicated teacher
    assert set(ema.state_dict()) == {'steps'} | {
        f'module.{k}' for k in model.state_dict()}


def _save(tmp_path, name, obj):
    path = str(tmp_path / name)
    torch.save(obj, path)
    return path


@pytest.mark.parametrize('fmt', ['mmengine', 'deit', 'timm_raw', 'ddp'])
def test_load_teacher_formats(tmp_path, fmt):
    ref = build().teacher
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    raw = ref.state_dict()  # TimmClassifier saves timm's own key names
    obj = dict(mmengine=dict(state_dict=raw, meta={}), deit=dict(model=raw),
               timm_raw=raw,
               ddp=dict(state_dict={f'module.{k}': v
                                    for k, v in raw.items()}))[fmt]
    model = build(teacher_ckpt=_save(tmp_path, 't.pth', obj))
    model.init_weights()  # what the Runner calls when training starts
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, raw[k]), k


def test_missing_teacher_checkpoint_says_how_to_get_it(tmp_path):
    model = build(teacher_ckpt=str(tmp_path / 'nope.pth'))
    with pytest.raises(MissingFileError) as e:
        model.init_weights()
    msg = str(e.value)
    assert 'nope.pth' in msg and "'regnety_160.deit_in1k'" in msg
    assert 'set model.teacher_ckpt in the config' in msg
    assert 'tools/' not in msg and '--cfg-options' not in msg
    cli = explain_exception(e.value)  # what the tools print
    assert 'tools/model_converters/timm_teacher.py' in cli
    assert '--cfg-options model.teacher_ckpt=PATH' in cli
    with pytest.raises(ConfigError, match='needs teacher_ckpt'):
        build().load_teacher()


def test_mismatched_teacher_checkpoint_is_refused(tmp_path):
    init_default_scope('mmpretrain')
    other = MODELS.build(dict(tiny_teacher_cfg(K), model_name='test_vit'))
    path = _save(tmp_path, 'vit.pth', dict(state_dict=other.state_dict()))
    with pytest.raises(CheckpointMismatchError,
                       match='does not fit the teacher'):
        build(teacher_ckpt=path).load_teacher()
    wrong_k = MODELS.build(tiny_teacher_cfg(K + 1))
    path = _save(tmp_path, 'k.pth', wrong_k.state_dict())
    with pytest.raises(CheckpointMismatchError,
                       match=r'2 with another shape.*\(6, 96\) vs '
                       r'model \(5, 96'):
        build(teacher_ckpt=path).load_teacher()


@pytest.mark.parametrize('teacher_pre,renormalised', [
    (None, False),  # no normalisation stated: the student's batch as is
    (dict(mean=[127.5] * 3, std=[60.] * 3, to_rgb=True), False),  # same
    # a BGR-trained teacher with other statistics (like mmpretrain's RegNets)
    (dict(mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395],
          to_rgb=False), True),
])
def test_teacher_gets_the_batch_in_its_own_normalisation(
        teacher_pre, renormalised):
    teacher = tiny_teacher_cfg(K)
    if teacher_pre is not None:
        teacher['data_preprocessor'] = teacher_pre
    model = build(teacher=teacher).eval()
    g = torch.Generator().manual_seed(0)
    raw = dict(inputs=[torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8,
                                     generator=g) for _ in range(2)])
    student_x = model.data_preprocessor(raw)['inputs']
    own_pre = model.teacher.data_preprocessor if teacher_pre else \
        model.data_preprocessor
    expected = model.teacher(own_pre(raw)['inputs'], mode='tensor')
    got = model.teacher_logits(student_x)
    assert model._renormalise is (renormalised if teacher_pre else None)
    assert torch.allclose(got, expected, atol=1e-5)


def test_teacher_from_a_config_file(tmp_path):
    cfg_file = tmp_path / 'teacher.py'
    cfg_file.write_text(
        f'model = {tiny_teacher_cfg(K)!r}\n'
        'data_preprocessor = dict(mean=[1., 2., 3.], std=[4., 5., 6.])\n')
    model = build(teacher=str(cfg_file))
    assert type(model.teacher).__name__ == 'TimmClassifier'
    # the config's top-level data_preprocessor is the teacher's
    assert model.teacher.data_preprocessor.mean.flatten().tolist() == \
        [1., 2., 3.]
    with pytest.raises(MissingFileError, match='Teacher config file'):
        build(teacher=str(tmp_path / 'missing.py'))


def test_teacher_with_other_classes_fails_clearly():
    model = build(teacher=tiny_teacher_cfg(K + 2))
    with pytest.raises(ValueError, match='same classes'):
        model(**augmented_batch(model), mode='loss')


def test_bad_arguments():
    with pytest.raises(ConfigError, match=r'alpha must be in \[0, 1\]'):
        build(alpha=1.5)
    with pytest.raises(ConfigError, match='needs .*DistillClsHead'):
        build(head=dict(type='LinearClsHead', num_classes=K,
                        in_channels=32))
