"""DINO: the momentum teacher, the optimizer, the training step and its
hook."""
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
from xcit_mm.models.selfsup.dino import (
    DINO,
    clip_grad_per_param_,
    teacher_momentum,
)
from xcit_mm.utils.errors import ConfigError, InputShapeError

K = 16  # prototypes


def dino_cfg(backbone=None, step=None, **loss):
    return dict(
        type='xcit_mm.DINO',
        backbone=backbone or dict(type='xcit_mm.XCiT', arch=TINY_ARCH,
                                  patch_size=8, drop_path_rate=0.1),
        head=dict(type='xcit_mm.DINOHead', in_channels=32, out_channels=K,
                  hidden_channels=24, bottleneck_channels=8),
        loss=dict(type='xcit_mm.DINOLoss', warmup_teacher_temp_epochs=2,
                  **loss),
        **(step or {}))


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
    """Records what the training step did, from outside."""
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


def run_dino(tmp_path, step_cfg, loss_cfg=None, epochs=2, hook_cfg=None,
             extra_hooks=()):
    init_default_scope('mmpretrain')
    probe = Probe()
    cfg = dino_cfg(step=dict(momentum=0.9, **step_cfg), **(loss_cfg or {}))
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
        custom_hooks=[dict(type='xcit_mm.DINOHook', **(hook_cfg or {})),
                      probe, *extra_hooks],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook',
                                           interval=100)),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        experiment_name=f'dino_{tmp_path.name}')
    runner.train()
    return runner, probe


def test_step_updates_teacher_freezes_last_layer_and_logs(tmp_path):
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


def test_step_global_clip(tmp_path):
    runner, probe = run_dino(tmp_path, dict(clip_grad=0.5, clip_mode='global',
                                            freeze_last_layer=0),
                             epochs=1)
    assert probe.records == [(0, True), (0, True)]
    assert 'train/grad_norm' in runner.message_hub.log_scalars
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


def test_collapse_warning_names_causes(tmp_path):
    # a huge teacher temperature: the teacher output is uniform
    run_dino(tmp_path, dict(clip_grad=None),
             loss_cfg=dict(teacher_temp=1e4, warmup_teacher_temp=1e4),
             epochs=1, hook_cfg=dict(collapse_patience=2))
    text = ''.join(p.read_text() for p in tmp_path.rglob('*.log'))
    assert 'DINO collapse warning at iteration 2' in text
    assert 'stayed uniform' in text and 'teacher temperature' in text


# ------------------------------------------------- the step, recomputed
class InitialState(Hook):
    """Keeps the weights training starts from (after initialisation)."""

    def before_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        self.state = copy.deepcopy(model.state_dict())


def train_with_runner(tmp_path, step_cfg, by_epoch=True, accum=1,
                      model=None):
    """4 iterations of 4 images (2 per epoch) with xcit_mm.DINOHook."""
    init_default_scope('mmpretrain')
    cfg = dino_cfg(step=step_cfg)
    cfg['backbone']['drop_path_rate'] = 0.  # no random numbers in the step
    cfg['data_preprocessor'] = dict(type='SelfSupDataPreprocessor',
                                    mean=[128.] * 3, std=[64.] * 3)
    init = InitialState()
    runner = Runner(
        model=model or cfg,
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=MultiViewSet(), batch_size=4,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(
            constructor='xcit_mm.DINOOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.04),
            paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
            accumulative_counts=accum),
        train_cfg=dict(by_epoch=True, max_epochs=2) if by_epoch else
        dict(by_epoch=False, max_iters=4),
        custom_hooks=[dict(type='xcit_mm.DINOHook'), init],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=100)),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        experiment_name=f'dino_step_{tmp_path.name}')
    runner.train()
    return runner, init.state, cfg


def official_steps(cfg, init_state, num_iters=4, iters_per_epoch=2,
                   accum=1, momentum=0.9, clip=0.5, freeze_last_layer=1):
    """DINO's ``train_one_epoch`` written out on a fresh copy of the model:
    forward, loss, backward, per-parameter clipping, last-layer gradients
    cancelled in the first epochs, AdamW step, teacher EMA. With gradient
    accumulation the centre moves once per step, by the mean teacher
    output of its ``accum`` micro-batches (what one large batch does)."""
    from mmengine.dataset import default_collate
    from mmpretrain.registry import MODELS
    model = MODELS.build(cfg)
    model.load_state_dict(init_state)
    optimizer = DINOOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.04)),
        dict(norm_decay_mult=0., bias_decay_mult=0.))(model).optimizer
    student = list(model.backbone.parameters()) + list(
        model.head.parameters())
    teacher = list(model.teacher.parameters())
    dataset = MultiViewSet()
    teacher_sum = 0.
    for it in range(num_iters):
        batch_idx = it % (len(dataset) // 4)
        batch = default_collate(
            [dataset[i] for i in range(4 * batch_idx, 4 * batch_idx + 4)])
        epoch = it // iters_per_epoch
        views = model.data_preprocessor(batch, True)['inputs']
        with torch.no_grad():
            teacher_out = model.multi_crop_forward(
                model.teacher['backbone'], model.teacher['head'], views[:2])
        student_out = model.multi_crop_forward(model.backbone, model.head,
                                               views)
        centre = model.dino_loss.center.clone()
        loss, _ = model.dino_loss(student_out, teacher_out, epoch)
        model.dino_loss.center.copy_(centre)  # it moves at the step
        teacher_sum = teacher_sum + torch.cat(teacher_out).sum(
            0, keepdim=True)
        (loss / accum).backward()
        if (it + 1) % accum:
            continue
        with torch.no_grad():  # the centre: an EMA of the step's mean
            model.dino_loss.center.mul_(0.9).add_(
                teacher_sum / (4 * accum * 2), alpha=1 - 0.9)
        teacher_sum = 0.
        for p in student:  # utils.clip_gradients
            if p.grad is not None:
                coef = clip / (p.grad.norm(2) + 1e-6)
                if coef < 1:
                    p.grad.mul_(coef)
        if epoch < freeze_last_layer:  # utils.cancel_gradients_last_layer
            for p in model.head.last_layer.parameters():
                p.grad = None
        optimizer.step()
        optimizer.zero_grad()
        m = 1 - (1 - momentum) * (math.cos(math.pi * it / num_iters) + 1) / 2
        with torch.no_grad():
            for p_t, p_s in zip(teacher, student):
                p_t.mul_(m).add_(p_s.detach(), alpha=1 - m)
    return model.state_dict()


@pytest.mark.parametrize('by_epoch,accum', [(True, 1), (False, 1),
                                            (True, 2)])
def test_train_step_is_the_official_step(tmp_path, by_epoch, accum):
    """Bit-identical weights (student, teacher, centre) after 4 iterations
    that cross an epoch: the teacher temperature rises and the last layer
    is released in the second epoch, by epochs or by iterations."""
    step_cfg = dict(momentum=0.9, clip_grad=0.5, freeze_last_layer=1)
    runner, init_state, cfg = train_with_runner(tmp_path, step_cfg,
                                                by_epoch, accum)
    expected = official_steps(cfg, init_state, accum=accum)
    got = runner.model.state_dict()
    assert got.keys() == expected.keys()
    assert not torch.equal(got['teacher.head.last_layer.weight_v'],
                           init_state['teacher.head.last_layer.weight_v'])
    for k in expected:
        assert torch.equal(got[k], expected[k]), k


def test_train_step_needs_its_position_and_owns_clipping():
    from mmengine.optim import OptimWrapper
    model = build()
    batch = dict(inputs=[v.mul(64).add(128).clamp(0, 255).to(torch.uint8)
                         for v in views()],
                 data_samples=[DataSample() for _ in range(2)])
    optimizer = torch.optim.SGD(model.student_params(), lr=0.1)
    with pytest.raises(ConfigError, match='DINOHook'):
        model.train_step(batch, OptimWrapper(optimizer))
    model.set_train_progress(0, 10, 5)
    with pytest.raises(ConfigError, match='clip_grad'):
        model.train_step(batch, OptimWrapper(optimizer,
                                             clip_grad=dict(max_norm=1.)))
    with pytest.raises(ValueError, match='out of range'):
        model.set_train_progress(10, 10, 5)
    before = [p.detach().clone() for p in model.teacher_params()]
    log_vars = model.train_step(batch, OptimWrapper(optimizer))
    assert log_vars['teacher_momentum'] == pytest.approx(0.996)
    assert 'grad_norm_max' in log_vars
    assert not all(torch.equal(a, b)
                   for a, b in zip(before, model.teacher_params()))
    # epoch 0 of a 1-epoch freeze: the last layer kept its weights
    assert model.last_layer_frozen() and model.epoch == 0
    model.set_train_progress(5, 10, 5)
    assert model.epoch == 1 and not model.last_layer_frozen()
    assert model.teacher_momentum() == pytest.approx(
        teacher_momentum(5, 10))


@pytest.fixture
def single_process_group():
    """A gloo process group of one process (DDP on the CPU)."""
    import socket

    import torch.distributed as dist
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_ddp_wrapper_runs_the_dino_step(tmp_path, single_process_group):
    from mmengine.model import MMDistributedDataParallel
    from mmpretrain.registry import MODELS

    from xcit_mm.registry import MODEL_WRAPPERS
    step_cfg = dict(momentum=0.9, clip_grad=0.5, freeze_last_layer=1)
    _, _, cfg = train_with_runner(tmp_path / 'plain', step_cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    wrapped = MODEL_WRAPPERS.build(
        dict(type='xcit_mm.DINODistributedDataParallel',
             broadcast_buffers=False, device_ids=None),
        default_args=dict(module=model))
    runner, init_state, _ = train_with_runner(tmp_path / 'ddp', step_cfg,
                                              model=wrapped)
    expected = official_steps(cfg, init_state)
    got = runner.model.module.state_dict()
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    # mmengine's own wrapper would skip DINO's step: refused
    with pytest.raises(ConfigError, match='DINODistributedDataParallel'):
        train_with_runner(tmp_path / 'mm', step_cfg,
                          model=MMDistributedDataParallel(
                              module=MODELS.build(cfg), device_ids=None))


def test_hook_refuses_a_skipping_nonfinite_loss_hook(tmp_path):
    with pytest.raises(ConfigError, match="action='stop'"):
        run_dino(tmp_path, dict(), epochs=1, extra_hooks=[
            dict(type='xcit_mm.NonFiniteLossHook', action='skip')])


def cpu_amp_wrapper(optimizer, monkeypatch):
    """mmengine's ``AmpOptimWrapper`` on the CPU: its constructor asserts a
    GPU and takes ``torch.cuda.amp.GradScaler``; the check is passed for
    the construction and the scaler is torch's own on the CPU
    (``GradScaler('cpu')``, the same class). Everything else -- scaled
    backward, ``optim_context``, ``step`` through the scaler -- is
    mmengine's and torch's code."""
    from mmengine.optim import AmpOptimWrapper
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    with monkeypatch.context() as m:
        m.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
        wrapper = AmpOptimWrapper(optimizer=optimizer)
    wrapper.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.**14)
    return wrapper


@pytest.mark.parametrize('fused', [False, True])
def test_clipping_under_amp_sees_unscaled_gradients(fused, monkeypatch):
    """Under loss scaling (here 2**14) DINO clips the true gradients, as
    main_dino.py does (``fp16_scaler.unscale_`` before
    ``clip_gradients``), with a fused optimizer too (whose step could
    unscale inside its kernel): the norms before clipping are those of the
    run without scaling, and the SGD step moves the weights as far (one
    unscale, not two)."""
    from mmengine.optim import OptimWrapper
    batch = dict(inputs=[v.mul(64).add(128).clamp(0, 255).to(torch.uint8)
                         for v in views()],
                 data_samples=[DataSample() for _ in range(2)])
    results = {}
    for amp in (False, True):
        model = build(step=dict(clip_grad=3.0, freeze_last_layer=0))
        model.set_train_progress(0, 10, 5)
        optimizer = torch.optim.SGD(model.student_params(), lr=0.1,
                                    fused=fused)
        wrapper = cpu_amp_wrapper(optimizer, monkeypatch) if amp \
            else OptimWrapper(optimizer)
        log_vars = model.train_step(batch, wrapper)
        results[amp] = float(log_vars['grad_norm_max']), [
            p.detach().clone() for p in model.student_params()]
    (norm, params), (amp_norm, amp_params) = results[False], results[True]
    assert norm > 3.0  # clipping acts
    # bf16 autocast in the AMP run: close, not equal; scaled would be 2**14x
    assert amp_norm == pytest.approx(norm, rel=0.05)
    for p, q in zip(params, amp_params):
        torch.testing.assert_close(p, q, rtol=0, atol=2e-3)
