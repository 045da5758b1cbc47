"""Preemption without lost work: on SIGTERM / SIGUSR1 the run saves the
iteration it is at and exits; under Slurm the job requeues itself."""
import os
import os.path as osp
import signal
import subprocess
from typing import Optional, Sequence

import torch
from mmengine.dist import (
    all_reduce,
    barrier,
    get_world_size,
    is_main_process,
)
from mmengine.hooks import Hook
from mmengine.logging import print_log

from xcit_mm.registry import HOOKS
from xcit_mm.runtime.fileio import atomic_write, register_atomic_backend
from xcit_mm.runtime.hooks.checkpoint_hook import AtomicCheckpointHook
from xcit_mm.utils.errors import ConfigError

#: The exit status of a process that saved a checkpoint and stopped because
#: it was asked to (EX_TEMPFAIL of sysexits.h: "try again later").
PREEMPTED_EXIT_CODE = 75


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Save the current iteration and stop when the job is preempted.

    Slurm sends SIGTERM (or the signal chosen with ``--signal=USR1@90``)
    some time before it kills a job; spot instances give 30 s to 2 min.
    With this hook every rank catches ``signals``, finishes the iteration
    it is in, and after every iteration the ranks agree whether any of
    them was signalled (an ``all_reduce`` of one number: the signal may
    reach the ranks at different moments). When one was, they all stop
    after the same iteration N:

    1. one checkpoint ``iter_N.pth`` is written (rank 0) through the
       config's :class:`~xcit_mm.runtime.AtomicCheckpointHook` (its folder,
       atomic backend and options), and ``last_checkpoint`` is moved to
       it; nothing is written when that hook has just saved iteration N;
    2. with ``requeue=True`` under Slurm (``SLURM_JOB_ID`` is set), rank 0
       runs ``scontrol requeue $SLURM_JOB_ID``; the requeued job sees
       ``SLURM_RESTART_COUNT`` and :class:`xcit_mm.Runner` resumes it from
       that checkpoint by itself (as ``resume='auto'``);
    3. every process exits with status ``exit_code``
       (:data:`PREEMPTED_EXIT_CODE`, 75, by default).

    A signal that arrives during the save is recorded and changes nothing;
    the checkpoint is written to a temporary file and renamed, so even a
    kill during the save leaves the previous checkpoint and the pointer to
    it intact. After a resume, the preemption checkpoint is deleted once
    the checkpoint hook has written a newer one. A signal that arrives
    during validation takes effect after the next training iteration.

    The handlers are installed in ``before_train`` and put back in
    ``after_train``. Add the hook to ``custom_hooks``::

        custom_hooks = [dict(type='xcit_mm.PreemptionHook', requeue=True)]

    Args:
        signals (Sequence[str]): Names of the signals that preempt.
            Defaults to ``('SIGTERM', 'SIGUSR1')``.
        requeue (bool): Run ``scontrol requeue $SLURM_JOB_ID`` after the
            save (Slurm only). Defaults to False.
        exit_code (int): The exit status after a preemption. Defaults to
            :data:`PREEMPTED_EXIT_CODE`.
    """

    priority = 'LOWEST'  # after the checkpoint hook's after_train_iter

    def __init__(self,
                 signals: Sequence[str] = ('SIGTERM', 'SIGUSR1'),
                 requeue: bool = False,
                 exit_code: int = PREEMPTED_EXIT_CODE) -> None:
        unknown = [s for s in signals if not hasattr(signal, s)]
        if unknown:
            raise ConfigError(
                f'PreemptionHook: unknown signal names {unknown}; use names '
                "such as 'SIGTERM' and 'SIGUSR1'.",
                config_key='custom_hooks')
        self.signals = tuple(getattr(signal, s) for s in signals)
        self.requeue = requeue
        self.exit_code = exit_code
        self.received: Optional[int] = None
        self._previous = {}
        self._saved_iter = None  # iteration of the newest save
        self._pending = None  # a preemption checkpoint to delete later

    # ------------------------------------------------------------ signals
    def _on_signal(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum

    def before_train(self, runner) -> None:
        for sig in self.signals:
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: nothing to catch
                return
            # restart system calls a signal interrupts (reads, sockets)
            signal.siginterrupt(sig, False)
        self._pending = runner.message_hub.get_info('preemption_ckpt')
        self._last_at_start = runner.message_hub.get_info('last_ckpt')

    def after_train(self, runner) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self._saved_iter = checkpoint['meta'].get('iter')

    # ------------------------------------------------------------ stopping
    def _agreed(self) -> bool:
        """Whether any rank was signalled (the same answer on all)."""
        flag = torch.tensor([0 if self.received is None else 1])
        if get_world_size() > 1:
            all_reduce(flag, op='max')
        return bool(flag.item())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._delete_superseded(runner)
        if self._agreed():
            self._preempt(runner)

    def after_train_epoch(self, runner) -> None:
        self._delete_superseded(runner)

    def _checkpoint_hook(self, runner) -> AtomicCheckpointHook:
        for hook in runner.hooks:
            if isinstance(hook, AtomicCheckpointHook):
                return hook
        raise ConfigError(
            'PreemptionHook saves through xcit_mm.AtomicCheckpointHook, and '
            "this config has none: set default_hooks.checkpoint=dict(type="
            "'xcit_mm.AtomicCheckpointHook', ...) (the runtime bases under "
            'configs/_base_/ do).', config_key='default_hooks.checkpoint')

    def _preempt(self, runner) -> None:
        step = runner.iter + 1
        name = (signal.Signals(self.received).name
                if self.received is not None else 'a signal to another rank')
        hook = self._checkpoint_hook(runner)
        path = hook.file_backend.join_path(hook.out_dir, f'iter_{step}.pth')
        if self._saved_iter != step:
            runner.message_hub.update_info('preemption_ckpt', path)
            runner.save_checkpoint(
                hook.out_dir, f'iter_{step}.pth',
                save_optimizer=hook.save_optimizer,
                save_param_scheduler=hook.save_param_scheduler,
                meta=dict(epoch=runner.epoch, iter=step), by_epoch=False,
                backend_args=hook.backend_args or dict(
                    backend=register_atomic_backend()),
                **hook.args)
            if is_main_process():
                atomic_write(path, osp.join(runner.work_dir,
                                            'last_checkpoint'))
        else:
            path = runner.message_hub.get_info('last_ckpt') or path
        barrier()
        print_log(
            f'Preempted ({name}) in iteration {step}: its checkpoint is '
            f'{path}. Exiting with status {self.exit_code}; '
            '`tools/train.py CONFIG --resume` continues from it (a requeued '
            'Slurm job or a torchrun restart resumes by itself).',
            logger='current')
        if self.requeue and is_main_process():
            self._requeue()
        barrier()
        # the launcher stops the other processes when one exits (torchrun
        # with SIGTERM, srun --kill-on-bad-exit): ignore it while this one
        # exits (Python restores the default handlers of its own ones
        # before the process ends, but keeps SIG_IGN)
        for sig in self.signals:
            signal.signal(sig, signal.SIG_IGN)
        self._previous.clear()
        raise SystemExit(self.exit_code)

    def _requeue(self) -> None:
        job = os.environ.get('SLURM_JOB_ID')
        if not job:
            print_log('PreemptionHook(requeue=True): not a Slurm job '
                      '(SLURM_JOB_ID is unset), so nothing is requeued.',
                      logger='current', level=30)
            return
        try:
            done = subprocess.run(['scontrol', 'requeue', job],
                                  capture_output=True, text=True,
                                  timeout=60)
            problem = done.returncode and (done.stderr.strip() or
                                           f'status {done.returncode}')
        except (OSError, subprocess.TimeoutExpired) as e:
            problem = str(e)
        if problem:
            print_log(f'`scontrol requeue {job}` failed ({problem}): '
                      'submit the job again; it resumes from the '
                      'checkpoint with --resume.', logger='current',
                      level=30)
        else:
            print_log(f'Requeued Slurm job {job}.', logger='current')

    def _delete_superseded(self, runner) -> None:
        """Delete the preemption checkpoint this run resumed from once the
        checkpoint hook has written a newer one."""
        if not self._pending or runner.message_hub.get_info(
                'last_ckpt') == self._last_at_start:
            return
        path, self._pending = self._pending, None
        runner.message_hub.update_info('preemption_ckpt', None)
        if is_main_process() and osp.isfile(path):
            os.remove(path)
