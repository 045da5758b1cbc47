"""Fault injection for the reliability tests: a tiny training config that
``tools/train.py`` runs in a subprocess, and hooks that kill the process at
a chosen point (imported through the config's ``custom_imports``).

The hooks register in mmengine's root HOOKS registry under names that no
library uses, so any ``default_scope`` finds them.
"""
import os
import resource
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from tests.utils import TINY_ARCH


@HOOKS.register_module(name='TestKillBeforeIterHook', force=True)
class KillBeforeIterHook(Hook):
    """SIGKILL this process just before iteration ``iteration`` (1-based)
    runs, after every hook of the previous one, checkpointing included."""

    priority = 'HIGHEST'

    def __init__(self, iteration: int):
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module(name='TestDieWhileSavingHook', force=True)
class DieWhileSavingHook(Hook):
    """Make the kernel kill this process in the middle of writing the
    checkpoint of iteration ``iteration``.

    Sets the file size limit (RLIMIT_FSIZE) to ``limit`` bytes and restores
    the default action of SIGXFSZ (CPython ignores it): the write that
    crosses the limit is cut short and the process is killed by SIGXFSZ,
    leaving a partial file, whatever code does the writing.
    """

    priority = 'LOWEST'

    def __init__(self, iteration: int, limit: int = 64 * 1024):
        self.iteration = iteration
        self.limit = limit

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta'].get('iter') == self.iteration:
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_FSIZE,
                               (self.limit, self.limit))


@HOOKS.register_module(name='TestRecordOrderHook', force=True)
class RecordOrderHook(Hook):
    """Append '<iteration> <image paths>' to ``path`` for every batch."""

    def __init__(self, path: str):
        self.path = path

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        names = [
            os.path.relpath(s.img_path, os.path.dirname(
                os.path.dirname(s.img_path)))
            for s in data_batch['data_samples']
        ]
        with open(self.path, 'a') as f:
            f.write(f'{runner.iter + 1} {" ".join(names)}\n')


def tiny_train_cfg(data_root: str, max_epochs: int = 3,
                   iter_ckpt_interval: int = 3, max_keep_ckpts: int = 1,
                   extra_hooks=(), num_workers: int = 0) -> dict:
    """A config for tools/train.py: XCiT with drop path, random crops and
    flips (so the RNG state matters), AdamW with a per-iteration cosine
    schedule, an epoch checkpoint and an iteration checkpoint, and xcit_mm's
    runtime (as configs/_base_/default_runtime.py names it)."""
    pipeline = [
        dict(type='xcit_mm.LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1.)),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]
    return dict(
        default_scope='mmpretrain',
        runner_type='xcit_mm.Runner',
        custom_imports=dict(imports=['tests.faults'],
                            allow_failed_imports=False),
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='xcit_mm.XCiT', arch=TINY_ARCH,
                          drop_path_rate=0.2),
            head=dict(type='LinearClsHead', num_classes=2, in_channels=32,
                      loss=dict(type='CrossEntropyLoss')),
            data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3,
                                   to_rgb=True)),
        train_dataloader=dict(
            batch_size=4, num_workers=num_workers,
            persistent_workers=num_workers > 0,
            dataset=dict(type='CustomDataset', data_root=data_root,
                         pipeline=pipeline),
            sampler=dict(type='DefaultSampler', shuffle=True)),
        train_cfg=dict(type='xcit_mm.ResumableEpochBasedTrainLoop',
                       max_epochs=max_epochs),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        param_scheduler=[dict(type='CosineAnnealingLR', by_epoch=True,
                              T_max=max_epochs, begin=0, end=max_epochs,
                              convert_to_iter_based=True)],
        default_hooks=dict(
            checkpoint=dict(type='xcit_mm.AtomicCheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1),
            nonfinite_loss=dict(type='xcit_mm.NonFiniteLossHook',
                                action='stop'),
            checkpoint_match=dict(type='xcit_mm.CheckpointMatchHook',
                                  mode='finetune'),
            preemption=dict(type='xcit_mm.PreemptionHook')),
        custom_hooks=[
            dict(type='xcit_mm.AtomicCheckpointHook', by_epoch=False,
                 interval=iter_ckpt_interval, max_keep_ckpts=max_keep_ckpts),
            *extra_hooks
        ],
        randomness=dict(seed=0, deterministic=True),
        log_level='INFO',
    )



@HOOKS.register_module(name='TestKillRankOnceHook', force=True)
class KillRankOnceHook(Hook):
    """SIGKILL the process of rank ``rank`` just before iteration
    ``iteration`` (1-based), once: ``marker`` records that it happened, so
    a restarted process trains on."""

    priority = 'HIGHEST'

    def __init__(self, iteration: int, rank: int, marker: str):
        self.iteration, self.rank, self.marker = iteration, rank, marker

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        from mmengine.dist import get_rank
        if (runner.iter + 1 == self.iteration and get_rank() == self.rank
                and not os.path.exists(self.marker)):
            open(self.marker, 'w').close()
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module(name='TestNaNInputOnRankHook', force=True)
class NaNInputOnRankHook(Hook):
    """Multiply the backbone input by NaN during iteration ``iteration``
    (1-based) on rank ``rank`` only (a single process is rank 0)."""

    priority = 'HIGHEST'

    def __init__(self, iteration: int, rank: int = 0):
        self.iteration, self.rank, self.handle = iteration, rank, None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        from mmengine.dist import get_rank
        from mmengine.model import is_model_wrapper
        if runner.iter + 1 == self.iteration and get_rank() == self.rank:
            model = runner.model.module if is_model_wrapper(
                runner.model) else runner.model
            self.handle = model.backbone.register_forward_pre_hook(
                lambda m, args: (args[0] * float('nan'), ))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


@HOOKS.register_module(name='TestSendSignalHook', force=True)
class SendSignalHook(Hook):
    """Send the signal named ``sig`` to this process on rank ``rank``: just
    before iteration ``iteration`` (1-based) runs, or, with
    ``during_save=True``, while the checkpoint of that iteration is being
    saved."""

    priority = 'HIGHEST'

    def __init__(self, iteration: int, rank: int = 0,
                 sig: str = 'SIGTERM', during_save: bool = False):
        self.iteration, self.rank = iteration, rank
        self.signum = getattr(signal, sig)
        self.during_save = during_save

    def _send(self):
        from mmengine.dist import get_rank
        if get_rank() == self.rank:
            os.kill(os.getpid(), self.signum)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not self.during_save and runner.iter + 1 == self.iteration:
            self._send()

    def before_save_checkpoint(self, runner, checkpoint):
        if self.during_save and checkpoint['meta'].get(
                'iter') == self.iteration:
            self._send()
