"""``runner_type='xcit_mm.Runner'``: mmengine's Runner with xcit_mm's runtime
for the run it builds, and for nothing else in the process."""
import contextlib
import logging
import os
from typing import Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner import Runner as MMEngineRunner

from xcit_mm.registry import RUNNERS
from xcit_mm.runtime.checkpoint import safe_loading
from xcit_mm.runtime.fileio import find_resume_checkpoint
from xcit_mm.runtime.launch import cpu_ddp_wrapper, launch
from xcit_mm.runtime.loops import (
    check_resume_layout,
    contiguous_batches,
    train_loader_layout,
)
from xcit_mm.runtime.mmengine_private import set_resume_point, train_loop_built


@RUNNERS.register_module()
class Runner(MMEngineRunner):
    """mmengine's :class:`~mmengine.runner.Runner`, plus:

    - **safe checkpoint loading** while ``train()``, ``val()`` and ``test()``
      run: ``load_from``, ``resume``, ``init_cfg=dict(type='Pretrained')``
      and every ``load_checkpoint`` read local files and ``http(s)://`` URLs
      with ``torch.load(weights_only=True)`` and a small allow-list
      (:func:`xcit_mm.runtime.safe_loading`), which makes resuming work on
      torch >= 2.6 and refuses a file that asks to run code. mmengine's own
      loaders are put back when the call returns;
    - **resume from the newest complete checkpoint**: ``resume=True`` with
      ``load_from=None`` resumes from the newest *complete* checkpoint of
      the work dir (a truncated or corrupt one is skipped with a warning;
      mmengine takes whatever ``last_checkpoint`` names), and with none
      starts from scratch and says so. ``resume='auto'`` does the same but
      keeps ``load_from`` as the starting point when there is nothing to
      resume (a fine-tuning run that may be restarted). ``resume=True``
      with a ``load_from`` resumes from that file, as in mmengine;
    - **restarts**: a process that torchrun restarted
      (``TORCHELASTIC_RESTART_COUNT > 0``) or a Slurm job that was requeued
      (``SLURM_RESTART_COUNT > 0``, e.g. by
      :class:`~xcit_mm.runtime.PreemptionHook`) resumes a training run by
      itself from the newest complete checkpoint of the work dir;
    - **resume on another number of processes**: every checkpoint records
      the data layout (``meta['train_loader']``: processes, batch size per
      process, iterations and samples per epoch). A run resumed with the
      same global batch on another number of processes continues with the
      same samples and schedules; with another global batch it stops with
      a :class:`~xcit_mm.utils.errors.ConfigError` that says what to do
      (:func:`~xcit_mm.runtime.loops.check_resume_layout`). The loop then
      takes the checkpoint's seed (``randomness.seed=None`` resumes
      exactly too);
    - **CPU process groups**: ``launcher='pytorch'`` without a GPU starts a
      gloo process group and wraps the model in DDP with
      ``device_ids=None``, when CPU runs are asked for with
      ``XCIT_MM_CPU=1`` (or torch has no CUDA); see
      :func:`xcit_mm.runtime.launch.launch`;
    - **no training set to test**: :attr:`iter` and :attr:`epoch` answer 0
      before training without building the training loop (mmengine builds
      it, and its data set, for a hook that asks while testing).

    Every training script that honours ``runner_type`` builds it
    (mmpretrain's, mmdet's, mmseg's and xcit_mm's); the runtime bases under
    ``configs/_base_/`` set it.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._start_from = kwargs.get('load_from')
        kwargs['resume'], kwargs['load_from'] = self._resume_point(
            kwargs.get('work_dir'), kwargs.get('resume', False),
            kwargs.get('load_from'))
        #: Whether this run resumes (public: what mmengine keeps private).
        self.resuming = bool(kwargs['resume'])
        super().__init__(*args, **kwargs)

    @staticmethod
    def restarted() -> Optional[str]:
        """What restarted this process: ``'torchrun (restart N)'`` when
        ``TORCHELASTIC_RESTART_COUNT`` > 0, ``'Slurm (requeued N times)'``
        when ``SLURM_RESTART_COUNT`` > 0, else None."""
        for var, by in (('TORCHELASTIC_RESTART_COUNT', 'torchrun (restart '),
                        ('SLURM_RESTART_COUNT', 'Slurm (requeue ')):
            count = int(os.environ.get(var, 0) or 0)
            if count:
                return f'{by}{count})'
        return None

    @staticmethod
    def _resume_point(work_dir, resume, load_from):
        """``(resume, load_from)`` for mmengine: the newest complete
        checkpoint of the work dir where one is asked for."""
        if resume == 'auto' or (resume and load_from is None):
            found = find_resume_checkpoint(work_dir) if work_dir else None
            if found is not None:
                print_log(f'Resuming from {found}.', logger='current')
                return True, found
            start = ('from load_from=' + str(load_from)
                     if resume == 'auto' and load_from else 'from scratch')
            print_log(
                f'No complete checkpoint to resume from in the work dir '
                f'{work_dir}, so training starts {start}.',
                logger='current', level=logging.WARNING)
            return False, load_from if resume == 'auto' else None
        return bool(resume), load_from

    def save_checkpoint(self, out_dir: str, filename: str, *args,
                        meta: Optional[dict] = None, **kwargs) -> None:
        """mmengine's ``save_checkpoint``; ``meta['train_loader']`` also
        records the data layout (:func:`train_loader_layout`)."""
        meta = dict(meta or {})
        layout = train_loader_layout(self)
        if layout is not None:
            meta.setdefault('train_loader', layout)
        super().save_checkpoint(out_dir, filename, *args, meta=meta,
                                **kwargs)

    def load_checkpoint(self, *args, **kwargs) -> dict:
        checkpoint = super().load_checkpoint(*args, **kwargs)
        self._loaded_meta = checkpoint.get('meta') or {}
        return checkpoint

    def resume(self, filename: str, *args, **kwargs) -> None:
        """mmengine's resume, then: the data layout of the checkpoint is
        checked against this run's (:func:`check_resume_layout`), and the
        training loop takes the checkpoint's seed (mmengine restores it
        after the loop has been built)."""
        super().resume(filename, *args, **kwargs)
        meta = getattr(self, '_loaded_meta', {})
        loop = self.train_loop
        note = check_resume_layout(
            meta.get('train_loader'), train_loader_layout(self), filename,
            iteration=self.iter, contiguous=contiguous_batches(
                getattr(loop, 'dataloader', None)))
        if note:
            print_log(note, logger='current')
        if hasattr(loop, 'sync_seed'):
            loop.sync_seed()

    def setup_env(self, env_cfg: dict) -> None:
        """mmengine's setup, after :func:`~xcit_mm.runtime.launch.launch`
        has started the process group where mmengine's launcher cannot."""
        super().setup_env(launch(self.launcher, env_cfg))

    def wrap_model(self, model_wrapper_cfg, model: nn.Module) -> nn.Module:
        """mmengine's wrapping; in a CPU process group, DDP without device
        ids."""
        if self.distributed and not torch.cuda.is_available():
            model_wrapper_cfg = cpu_ddp_wrapper(
                model_wrapper_cfg, self.cfg.get('find_unused_parameters',
                                                False))
        return super().wrap_model(model_wrapper_cfg, model)

    @property
    def epoch(self) -> int:
        """The current epoch: 0 while no training loop has been built, as
        in mmengine, but without building it (see :attr:`iter`)."""
        return super().epoch if train_loop_built(self) else 0

    @property
    def iter(self) -> int:
        """The current iteration: 0 while no training loop has been built.

        mmengine builds the training loop, and its data set, to answer;
        a hook that reads it while testing (mmseg's visualisation hook,
        ``tools/test.py --show-dir``) would then need the training split.
        A freshly built loop answers 0 too."""
        return super().iter if train_loop_built(self) else 0

    #: ``'train'``, ``'val'`` or ``'test'`` while that call runs, else None
    #: (:class:`~xcit_mm.runtime.CheckpointMatchHook` is strict outside
    #: training).
    phase = None

    @contextlib.contextmanager
    def _running(self, phase: str):
        self.phase = phase
        try:
            with safe_loading():
                yield
        finally:
            self.phase = None

    def train(self) -> nn.Module:
        """mmengine's ``train()``; a training process that torchrun
        restarted or Slurm requeued resumes from the newest complete
        checkpoint of the work dir (as ``resume='auto'``). ``val()`` and
        ``test()`` load what they are given."""
        by = self.restarted()
        if by and not self.resuming:
            print_log(f'Restarted by {by}: resuming.', logger='current')
            resume, load_from = self._resume_point(self.work_dir, 'auto',
                                                   self._start_from)
            set_resume_point(self, resume, load_from)
            self.resuming = resume
        with self._running('train'):
            return super().train()

    def val(self) -> dict:
        with self._running('val'):
            return super().val()

    def test(self) -> dict:
        with self._running('test'):
            return super().test()
