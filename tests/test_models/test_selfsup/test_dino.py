"""DINO: the momentum teacher, the optimizer, the hook around the step."""
import copy
import math

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.structures import DataSample

from tests.utils import TINY_ARCH
from xcit_mm.engine import DINOOptimWrapperConstructor
from xcit_mm.engine.hooks.dino_hook import clip_grad_per_param_
from xcit_mm.models.selfsup.dino import DINO, teacher_momentum
from xcit_mm.utils.errors import InputShapeError

K = 16  # prototypes


def dino_cfg(backbone=None, **loss):
    return dict(
        type='xcit_mm.DINO',
        backbone=backbone or dict(type='xcit_mm.XCiT', arch=TINY_ARCH,
                                  patch_size=8, drop_path_rate=0.1),
        head=dict(type='xcit_mm.DINOHead', in_channels=32, out_channels=K,
                  hidden_channels=24, bottleneck_channels=8),
        loss=dict(type='xcit_mm.DINOLoss', warmup_teacher_temp_epochs=2,
                  **loss))


def build(**kw) -> DINO:
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(dino_cfg(**kw))
    model.init_weights()
    return model


def views(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 32, 32, generator=g) for _ in range(2)] + \
        [torch.randn(batch, 3, 16, 16, generator=g) for _ in range(2)]


def test_teacher_is_a_frozen_copy_outside_the_optimizer():
    model = build()
    s_sd = {k: v for k, v in model.state_dict().items()
            if not k.startswith(('teacher.', 'dino_loss.'))}
    t_sd = {k[len('teacher.'):]: v for k, v in model.state_dict().items()
            if k.startswith('teacher.')}
    assert s_sd.keys() == t_sd.keys()
    for k in s_sd:
        torch.testing.assert_close(s_sd[k], t_sd[k])
        assert s_sd[k].data_ptr() != t_sd[k].data_ptr()
    assert not any(p.requires_grad for p in model.teacher.parameters())
    # the official teacher has no stochastic depth
    assert model.backbone.blocks[0].drop_path.drop_prob == 0.1
    assert model.teacher['backbone'].blocks[0].drop_path.drop_prob == 0.

    wrapper = DINOOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.04)),
        dict(norm_decay_mult=0., bias_decay_mult=0.))(model)
    in_optim = {id(p) for g in wrapper.optimizer.param_groups
                for p in g['params']}
    trainable = {id(p) for p in model.student_params() if p.requires_grad}
    assert in_optim == trainable
    assert not in_optim & {id(p) for p in model.teacher.parameters()}
    # also without a paramwise_cfg (mmengine would pass every parameter)
    wrapper = DINOOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=1e-3)))(model)
    assert {id(p) for g in wrapper.optimizer.param_groups
            for p in g['params']} == {id(p) for p in model.student_params()}

    losses = model.loss(views(), [DataSample() for _ in range(2)])
    assert set(losses) == {'loss', 'teacher_entropy', 'teacher_batch_entropy',
                           'kl_div', 'center_norm', 'teacher_temp'}
    losses['loss'].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.backbone.patch_embed.proj[0][0].weight.grad is not None


def test_momentum_schedule_is_dinos_cosine():
    # DINO's utils.cosine_scheduler(0.996, 1, epochs, niter_per_ep)
    epochs, niter = 3, 7
    iters = np.arange(epochs * niter)
    reference = 1 + 0.5 * (0.996 - 1) * (1 + np.cos(np.pi * iters /
                                                    len(iters)))
    got = [teacher_momentum(i, epochs * niter) for i in iters]
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-15)
    assert got[0] == pytest.approx(0.996)


def test_update_teacher_is_an_ema_of_the_parameters():
    model = build()
    with torch.no_grad():
        for p in model.student_params():
            p.add_(torch.randn_like(p))
    teacher_before = copy.deepcopy(model.teacher)
    buffers_before = {k: v.clone() for k, v in model.teacher.named_buffers()}
    model.update_teacher(0.9)
    for (name, t), t0, s in zip(model.teacher.named_parameters(),
                                teacher_before.parameters(),
                                model.student_params()):
        torch.testing.assert_close(t, 0.9 * t0 + 0.1 * s, msg=name)
    for k, v in model.teacher.named_buffers():  # BN statistics: its own
        torch.testing.assert_close(v, buffers_before[k])


def test_multi_crop_forward_batches_by_resolution():
    model = build().eval()  # BN on running statistics: batch-independent
    x = views(batch=3)
    outs = model.multi_crop_forward(model.backbone, model.head, x)
    assert [o.shape for o in outs] == [(3, K)] * 4
    for view, out in zip(x, outs):
        torch.testing.assert_close(out, model.head(model.backbone(view)[0]),
                                   rtol=1e-4, atol=1e-5)
    with pytest.raises(InputShapeError, match='at least 2 views'):
        model.loss(x[:1], None)
    # global views only (no local crops): each teaches the other
    assert torch.isfinite(model.loss(x[:2], None)['loss'])


def test_vision_transformer_backbone():
    """A second backbone: mmpretrain's ViT with its class token."""
    vit = dict(type='VisionTransformer',
               arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                         feedforward_channels=64),
               img_size=32, patch_size=8, out_type='cls_token',
               drop_path_rate=0.1)
    model = build(backbone=vit)
    losses = model.loss(views(), None)
    losses['loss'].backward()
    assert torch.isfinite(losses['loss'])
    assert all(p.grad is None for p in model.teacher.parameters())


def test_no_nan_under_bf16_autocast():
    model = build()
    for step in range(2):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            losses = model.loss(views(seed=step), None)
        losses['loss'].backward()
        assert all(torch.isfinite(v) for v in losses.values())
        assert all(torch.isfinite(p.grad).all()
                   for p in model.student_params() if p.grad is not None)
        model.update_teacher(0.996)


def test_clip_grad_per_param_is_dinos_rule():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.zeros(n)) for n in (3, 5, 7, 2)]
    for p, scale in zip(params, (0.1, 2.0, 10.0, 1.0)):
        p.grad = torch.randn_like(p) * scale
    params[3].grad = None
    expected = []
    for p in params:  # DINO's utils.clip_gradients, written out
        if p.grad is None:
            expected.append(None)
            continue
        g = p.grad.clone()
        coef = 1.0 / (g.norm(2) + 1e-6)
        expected.append(g * coef if coef < 1 else g)
    norms = clip_grad_per_param_(params, 1.0)
    assert len(norms) == 3
    for p, e in zip(params, expected):
        if e is None:
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, e)
            assert float(p.grad.norm()) <= 1.0 + 1e-5


# ---------------------------------------------------------------- runner
class MultiViewSet(torch.utils.data.Dataset):
    """Random uint8 multi-crop samples as the MultiView pipeline packs
    them."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        imgs = [torch.randint(0, 256, (3, s, s), generator=g,
                              dtype=torch.uint8) for s in (32, 32, 16, 16)]
        return dict(inputs=imgs, data_samples=DataSample())


class Probe(Hook):
    """Records what DINOHook did, from outside (runs after it)."""
    priority = 'LOWEST'

    def __init__(self):
        self.records = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        self.teacher = [p.detach().clone() for p in model.teacher_params()]
        self.last = model.head.last_layer.weight_v.detach().clone()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        model = runner.model
        m = teacher_momentum(runner.iter, runner.max_iters, 0.9, 1.0)
        for t, t0, s in zip(model.teacher_params(), self.teacher,
                            model.student_params()):
            torch.testing.assert_close(t, m * t0 + (1 - m) * s)
        changed = not torch.equal(self.last,
                                  model.head.last_layer.weight_v)
        self.records.append((runner.epoch, changed))


def run_dino(tmp_path, hook_cfg, loss_cfg=None, epochs=2):
    init_default_scope('mmpretrain')
    probe = Probe()
    cfg = dino_cfg(**(loss_cfg or {}))
    cfg['data_preprocessor'] = dict(type='SelfSupDataPreprocessor',
                                    mean=[128.] * 3, std=[64.] * 3)
    runner = Runner(
        model=cfg,
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=MultiViewSet(), batch_size=4,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(
            constructor='xcit_mm.DINOOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.04),
            paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.)),
        param_scheduler=[dict(type='CosineAnnealingParamScheduler',
                              param_name='weight_decay', eta_min_ratio=10.,
                              by_epoch=False, begin=0, end=2 * epochs)],
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        custom_hooks=[dict(type='xcit_mm.DINOHook', momentum=0.9,
                           **hook_cfg), probe],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook',
                                           interval=100)),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        experiment_name=f'dino_{tmp_path.name}')
    runner.train()
    return runner, probe


def test_hook_updates_teacher_freezes_last_layer_and_logs(tmp_path):
    runner, probe = run_dino(tmp_path, dict(clip_grad=0.5,
                                            freeze_last_layer=1))
    # 2 iterations per epoch: the last layer is frozen in epoch 0 only
    assert probe.records == [(0, False), (0, False), (1, True), (1, True)]
    hub = runner.message_hub
    for key in ('teacher_entropy', 'teacher_batch_entropy', 'kl_div',
                'center_norm', 'teacher_momentum', 'grad_norm_max'):
        assert f'train/{key}' in hub.log_scalars, key
    assert hub.get_scalar('train/teacher_momentum').current() == \
        pytest.approx(teacher_momentum(3, 4, 0.9, 1.0))
    # the weight-decay cosine ran on the decayed group only
    groups = runner.optim_wrapper.optimizer.param_groups
    decays = sorted({round(g['weight_decay'], 12) for g in groups})
    assert decays == [0.0, pytest.approx(
        0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(math.pi * 3 / 4)))]


def test_hook_global_clip(tmp_path):
    runner, probe = run_dino(tmp_path, dict(clip_grad=0.5, clip_mode='global',
                                            freeze_last_layer=0),
                             epochs=1)
    assert probe.records == [(0, True), (0, True)]
    assert 'train/grad_norm' in runner.message_hub.log_scalars
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


def test_collapse_warning_names_causes(tmp_path):
    # a huge teacher temperature: the teacher output is uniform
    run_dino(tmp_path, dict(collapse_patience=2, clip_grad=None),
             loss_cfg=dict(teacher_temp=1e4, warmup_teacher_temp=1e4),
             epochs=1)
    text = ''.join(p.read_text() for p in tmp_path.rglob('*.log'))
    assert 'DINO collapse warning at iteration 2' in text
    assert 'stayed uniform' in text and 'teacher temperature' in text
