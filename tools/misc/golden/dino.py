"""DINO golden outputs from facebookresearch/dino.

Everything is computed by the official code of the checkout at
:data:`COMMIT` (``vision_transformer.DINOHead``, ``main_dino.DINOLoss``,
``main_dino.train_one_epoch``, ``utils.cosine_scheduler``,
``utils.clip_gradients``, ``utils.cancel_gradients_last_layer``,
``utils.get_params_groups``, ``utils.MultiCropWrapper``), on seeded random
weights and inputs, into one fixture ``dino.npz``:

- ``head`` / ``head_bn``: ``DINOHead`` forwards (without / with BN, eval);
- ``loss``: ``DINOLoss`` (2 global + 2 local views) over three iterations
  at epochs 0, 1 and 4, with the centre after each;
- ``schedule.*``: the per-iteration lr (warm-up from 0), weight decay and
  teacher momentum, and the per-epoch teacher temperature, with the
  settings of ``configs/dino`` (``SCHEDULE`` in the meta);
- ``clip``: gradients before and after ``clip_gradients``;
- ``step``: ``train_one_epoch`` for epochs 0 and 1, two iterations each,
  on a student whose backbone is the identity (the views are feature
  vectors): loss, clipping, last-layer freeze (epoch 0 only), AdamW step
  and EMA teacher update; the losses, the student after each epoch, the
  teacher and the centre.

``train_one_epoch`` moves the views to the GPU and synchronises CUDA, and
``DINOLoss`` all-reduces its centre: on the CPU and in one process those
are identities, and the generator makes them so while it runs.
"""
import argparse
import contextlib
import os.path as osp
import sys
import types

import torch

REPOSITORY = 'facebookresearch/dino'
COMMIT = '7c446df5b9f45747937fb0d72314eb9f7b66930a'

HEAD = dict(in_dim=16, out_dim=64, hidden_dim=32, bottleneck_dim=8,
            nlayers=3)
LOSS = dict(out_dim=64, ncrops=4, warmup_teacher_temp=0.04,
            teacher_temp=0.07, warmup_teacher_temp_epochs=3, nepochs=6,
            student_temp=0.1, center_momentum=0.9)
LOSS_EPOCHS = (0, 1, 4)
#: configs/dino/dino_xcit-s12-p16_8xb128-300e_in1k.py with 3 iterations
#: per epoch.
SCHEDULE = dict(lr=5e-4 * 1024 / 256, min_lr=1e-6, epochs=300,
                warmup_epochs=10, niter_per_ep=3, weight_decay=0.04,
                weight_decay_end=0.4, momentum_teacher=0.996,
                warmup_teacher_temp=0.04, teacher_temp=0.07,
                warmup_teacher_temp_epochs=30)
#: train_one_epoch: 2 epochs of 2 iterations; a clip small enough to act.
STEP = dict(lr=0.05, min_lr=1e-6, epochs=2, warmup_epochs=1, niter_per_ep=2,
            weight_decay=0.04, weight_decay_end=0.4, momentum_teacher=0.996,
            clip_grad=0.05, freeze_last_layer=1, batch=4, ncrops=4,
            warmup_teacher_temp=0.04, teacher_temp=0.07,
            warmup_teacher_temp_epochs=2)


@contextlib.contextmanager
def official_on_cpu(main_dino):
    """Make ``.cuda()``, ``torch.cuda.synchronize`` and the centre's
    ``dist`` calls the one-process CPU identities they are."""
    saved = (torch.Tensor.cuda, torch.cuda.synchronize, main_dino.dist)
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.cuda.synchronize = lambda *a, **k: None
    main_dino.dist = types.SimpleNamespace(all_reduce=lambda t: t,
                                           get_world_size=lambda: 1)
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.cuda.synchronize, main_dino.dist = saved


def _randomize(module, g):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features,
                                                       generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features,
                                                     generator=g))
    return module


def generate(repo, out, write_golden):
    sys.path.insert(0, repo)
    import main_dino
    import utils
    import vision_transformer as vits
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    params, inputs, outputs = {}, {}, {}
    x = torch.randn(6, HEAD['in_dim'], generator=g)
    inputs['head'] = x
    for name, use_bn in (('head', False), ('head_bn', True)):
        head = _randomize(vits.DINOHead(use_bn=use_bn, **HEAD), g).eval()
        params.update({f'{name}.{k}': v for k, v in
                       head.state_dict().items()})
        with torch.no_grad():
            outputs[name] = head(x)

    with official_on_cpu(main_dino):
        # the loss over three iterations, the centre moving
        loss = main_dino.DINOLoss(**LOSS)
        B, K = 5, LOSS['out_dim']
        for i, epoch in enumerate(LOSS_EPOCHS):
            s = 3 * torch.randn(LOSS['ncrops'] * B, K, generator=g)
            t = 3 * torch.randn(2 * B, K, generator=g)
            inputs[f'loss.{i}.student'], inputs[f'loss.{i}.teacher'] = s, t
            outputs[f'loss.{i}'] = loss(s, t, epoch)
            outputs[f'loss.{i}.center'] = loss.center.clone()

        # the schedules
        S = SCHEDULE
        n = S['niter_per_ep']
        outputs['schedule.lr'] = utils.cosine_scheduler(
            S['lr'], S['min_lr'], S['epochs'], n,
            warmup_epochs=S['warmup_epochs'])
        outputs['schedule.wd'] = utils.cosine_scheduler(
            S['weight_decay'], S['weight_decay_end'], S['epochs'], n)
        outputs['schedule.momentum'] = utils.cosine_scheduler(
            S['momentum_teacher'], 1, S['epochs'], n)
        outputs['schedule.teacher_temp'] = main_dino.DINOLoss(
            65536, 10, S['warmup_teacher_temp'], S['teacher_temp'],
            S['warmup_teacher_temp_epochs'],
            S['epochs']).teacher_temp_schedule

        # per-parameter clipping
        head = vits.DINOHead(**HEAD)
        for p in head.parameters():
            p.grad = torch.randn(p.shape, generator=g) * (
                0.05 + 3 * torch.rand(1, generator=g))
        names = [k for k, p in head.named_parameters()
                 if p.grad is not None]
        inputs.update({f'clip.{k}': p.grad.clone()
                       for k, p in head.named_parameters()})
        norms = utils.clip_gradients(head, 1.0)
        outputs.update({f'clip.{k}': p.grad for k, p in
                        head.named_parameters()})
        outputs['clip.norms'] = torch.tensor(norms)

        step_outputs = train_two_epochs(main_dino, utils, vits, g, inputs,
                                        params)
        outputs.update(step_outputs)
    meta = dict(repository=REPOSITORY, commit=COMMIT, head=HEAD, loss=LOSS,
                loss_epochs=LOSS_EPOCHS, schedule=SCHEDULE, step=STEP,
                clip=1.0, clip_names=names)
    return [write_golden(osp.join(out, 'dino.npz'), params, inputs, outputs,
                         meta)]


class _DDP(torch.nn.Module):
    """Stands for DDP around the student (``student.module``)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)


def train_two_epochs(main_dino, utils, vits, g, inputs, params):
    T = STEP
    head = _randomize(vits.DINOHead(norm_last_layer=False, **HEAD), g)
    student = utils.MultiCropWrapper(torch.nn.Identity(), head)
    teacher = utils.MultiCropWrapper(
        torch.nn.Identity(), vits.DINOHead(norm_last_layer=False, **HEAD))
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    params.update({f'step.{k}': v.clone()
                   for k, v in head.state_dict().items()})
    student = _DDP(student)
    loss = main_dino.DINOLoss(
        HEAD['out_dim'], T['ncrops'], T['warmup_teacher_temp'],
        T['teacher_temp'], T['warmup_teacher_temp_epochs'], T['epochs'])
    optimizer = torch.optim.AdamW(utils.get_params_groups(student))
    n = T['niter_per_ep']
    lr = utils.cosine_scheduler(T['lr'], T['min_lr'], T['epochs'], n,
                                warmup_epochs=T['warmup_epochs'])
    wd = utils.cosine_scheduler(T['weight_decay'], T['weight_decay_end'],
                                T['epochs'], n)
    momentum = utils.cosine_scheduler(T['momentum_teacher'], 1, T['epochs'],
                                      n)
    args = argparse.Namespace(epochs=T['epochs'], clip_grad=T['clip_grad'],
                              freeze_last_layer=T['freeze_last_layer'])
    outputs = {}
    for epoch in range(T['epochs']):
        batches = []
        for it in range(n):
            views = [torch.randn(T['batch'], HEAD['in_dim'], generator=g)
                     for _ in range(T['ncrops'])]
            for v, view in enumerate(views):
                inputs[f'step.{epoch}.{it}.view{v}'] = view
            batches.append((views, None))
        stats = main_dino.train_one_epoch(
            student, teacher, teacher, loss, batches, optimizer, lr, wd,
            momentum, epoch, None, args)
        outputs[f'step.{epoch}.mean_loss'] = torch.tensor(stats['loss'])
        outputs.update({f'step.{epoch}.student.{k}': v.clone() for k, v in
                        student.module.head.state_dict().items()})
    outputs.update({f'step.teacher.{k}': v for k, v in
                    teacher.head.state_dict().items()})
    outputs['step.center'] = loss.center
    return outputs
