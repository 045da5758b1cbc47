"""Stop, or skip the step, when the training loss is NaN or infinite."""
import math
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper

from xcit_mm.registry import HOOKS
from xcit_mm.utils.errors import NonFiniteLossError, NonFiniteWeightsError

ACTIONS = ('stop', 'skip')


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Guard training against a NaN or infinite loss.

    Two ways of checking, by ``interval``:

    - ``interval=1`` (and always with ``action='skip'``): the loss is
      checked after the forward pass and *before* the backward pass and the
      optimizer step, so a bad iteration never reaches the weights. This
      costs, in multi-process training, an all-reduce per iteration, a
      host-device synchronisation in the middle of the step (before the
      backward pass is queued), and breaks a ``torch.compile``-d
      ``train_step`` into pieces;
    - ``interval=N > 1`` (the default, 50): after each iteration a flag
      and the first bad iteration are accumulated *on the device*; they
      are read and all-reduced every N iterations and at the end of
      training, and read before every checkpoint is written (with the
      weights' check). This adds nothing inside ``train_step`` and no
      collective per iteration. It does not spare the host-device
      synchronisation of each iteration: mmengine's ``RuntimeInfoHook``
      already reads every logged value of the step to the host
      (``message_hub.update_scalar`` calls ``.item()``), after the step. A
      non-finite loss then stops training at the latest N iterations
      later, and always before a checkpoint: the checkpoints on disk stay
      finite (the weights in memory may not be).

    On a non-finite loss:

    - ``action='stop'`` raises :class:`NonFiniteLossError`, whose message
      names the (first) iteration, the epoch and every loss term;
    - ``action='skip'`` logs the same, then discards the iteration: no
      optimizer step, gradients zeroed, and the model's buffers (BN running
      statistics, which the bad forward pass may already have polluted) put
      back as they were before it. After ``max_skips`` consecutive skipped
      iterations it stops as with ``'stop'``.

    Either way, a checkpoint about to be written with non-finite weights
    (for another reason, e.g. an overflowing gradient) is refused with
    :class:`NonFiniteWeightsError` before anything is written, so the last
    checkpoint on disk stays usable.

    In multi-process training the decision is all-reduced, so every rank
    stops or skips together. With gradient accumulation a skipped
    micro-batch discards the gradients accumulated so far in that window.

    The runtime bases under ``configs/_base_/`` add
    ``NonFiniteLossHook(action='stop')`` (``default_hooks.nonfinite_loss``;
    a ``custom_hooks`` entry in the mmseg base); to skip instead::

        default_hooks = dict(nonfinite_loss=dict(action='skip', max_skips=10))

    Args:
        action (str): ``'stop'`` or ``'skip'``. Defaults to ``'stop'``.
        max_skips (int): With ``'skip'``, stop after this many consecutive
            non-finite iterations. Defaults to 10.
        check_weights_on_save (bool): Refuse to write a checkpoint with
            non-finite weights. Defaults to True.
        interval (int): With ``'stop'``, read the accumulated flag every
            ``interval`` iterations (1: check each loss before its step).
            Defaults to 50.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'stop', max_skips: int = 10,
                 check_weights_on_save: bool = True,
                 interval: int = 50) -> None:
        if action not in ACTIONS:
            raise ValueError(f'NonFiniteLossHook action must be one of '
                             f'{ACTIONS}, got {action!r}.')
        if int(interval) < 1:
            raise ValueError('NonFiniteLossHook interval must be >= 1, got '
                             f'{interval!r}.')
        self.action = action
        # skipping decides before each step: it needs the value at once
        self.interval = 1 if action == 'skip' else int(interval)
        # deferred check: first non-finite iteration (inf: none), its terms
        self._first: Optional[torch.Tensor] = None
        self._terms: Optional[Tuple[List[str], torch.Tensor]] = None
        self.max_skips = max_skips
        self.check_weights_on_save = check_weights_on_save
        self.skipped_iters = []  # iterations (1-based) that were skipped
        self._consecutive = 0
        self._skip_update = False
        self._buffers: Optional[Dict[str, torch.Tensor]] = None
        self._runner = None
        self._batch_idx = 0

    # ------------------------------------------------------------ install
    def before_train(self, runner) -> None:
        self._runner = runner
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if getattr(model, '_xcit_mm_nonfinite_guard', None) is self:
            return
        if self.interval > 1:  # deferred: after_train_iter does the work
            return
        # Wrap the two steps of mmengine's train_step that matter: the
        # parsed loss (the terms are known there) and the update.
        parse_losses = model.parse_losses

        def guarded_parse_losses(losses):
            loss, log_vars = parse_losses(losses)
            self._check(loss, log_vars)
            return loss, log_vars

        model.parse_losses = guarded_parse_losses
        model._xcit_mm_nonfinite_guard = self
        optim_wrapper = runner.optim_wrapper
        if isinstance(optim_wrapper, OptimWrapper):
            update_params = optim_wrapper.update_params

            def guarded_update_params(loss, *args, **kwargs):
                if not self._skip_update:
                    return update_params(loss, *args, **kwargs)
                self._discard(optim_wrapper, loss)

            optim_wrapper.update_params = guarded_update_params
        elif self.action == 'skip':
            raise TypeError('NonFiniteLossHook(action="skip") needs a '
                            'single OptimWrapper; use action="stop" with '
                            f'{type(optim_wrapper).__name__}.')

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self._batch_idx = batch_idx
        self._skip_update = False
        if self.action == 'skip':  # what a skipped iteration restores
            model = runner.model.module if is_model_wrapper(
                runner.model) else runner.model
            self._buffers = {
                k: v.detach().clone()
                for k, v in model.named_buffers()
            }

    # ----------------------------------------------------- deferred check
    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.interval == 1:
            return
        loss = (outputs or {}).get('loss')
        if torch.is_tensor(loss):
            self._accumulate(runner.iter + 1, loss.detach(), outputs)
        if (runner.iter + 1) % self.interval == 0:
            self._read_flag(runner)

    def _accumulate(self, it: int, loss: torch.Tensor, outputs: Dict) -> None:
        """On the device, without synchronising: remember the first
        iteration whose loss is not finite, and its loss terms."""
        keys = [k for k, v in outputs.items()
                if torch.is_tensor(v) and v.numel() == 1]
        values = torch.stack([outputs[k].detach().float().reshape(())
                              for k in keys])
        if self._first is None:
            self._first = torch.full((), math.inf, device=loss.device)
        new = ~torch.isfinite(loss).all() & torch.isinf(self._first)
        self._first = torch.where(new, float(it), self._first)
        if self._terms is None or self._terms[0] != keys:
            self._terms = (keys, torch.where(new, values, values.new_zeros(
                len(keys))))
        else:
            self._terms = (keys, torch.where(new, values, self._terms[1]))

    def _read_flag(self, runner, collective: bool = True) -> None:
        """Read (and, when ``collective``, all-reduce) the accumulated
        flag; stop if set."""
        if self.interval == 1 or self._first is None:
            return
        first = self._first.clone()
        if collective:
            all_reduce(first, op='min')  # every rank decides the same
        first = first.item()
        if math.isinf(first):
            return
        mine = self._first.item() == first
        terms = ''
        if mine:
            keys, values = self._terms
            terms = ': ' + ', '.join(
                f'{k}={_value(v)}' for k, v in zip(keys, values.tolist()))
        self._first = None
        loop = runner.train_loop
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {int(first)}/{loop.max_iters}'
            f'{terms} (found at iteration {runner.iter + 1}, checked every '
            f'{self.interval} iterations and before each checkpoint). '
            'Training stopped before writing a checkpoint, so the '
            'checkpoints on disk are finite (the weights in memory are '
            'not): resume from the last one (resume=True in the config) '
            'with a lower learning rate or more warm-up, gradient clipping '
            '(optim_wrapper.clip_grad=dict(max_norm=1.0)) or bf16 instead '
            "of fp16; NonFiniteLossHook(interval=1) stops before the step "
            "of the bad iteration, and action='skip' skips such "
            'iterations.')

    def after_train(self, runner) -> None:
        self._read_flag(runner)

    # -------------------------------------------------------------- check
    def _where(self) -> str:
        runner = self._runner
        loop = runner.train_loop
        where = f'iteration {runner.iter + 1}/{loop.max_iters}'
        if hasattr(loop, 'max_epochs'):
            where += (f' (epoch {runner.epoch + 1}, batch '
                      f'{self._batch_idx + 1}/{len(loop.dataloader)})')
        return where

    def _check(self, loss: torch.Tensor, log_vars: Dict) -> None:
        bad = torch.tensor(0. if torch.isfinite(loss).all() else 1.,
                           device=loss.device)
        all_reduce(bad, op='max')  # every rank decides the same
        if bad.item() == 0:
            self._consecutive = 0
            return
        terms = ', '.join(f'{k}={_value(v)}' for k, v in log_vars.items())
        msg = f'Non-finite loss at {self._where()}: {terms}.'
        self._consecutive += 1
        if self.action == 'stop' or self._consecutive > self.max_skips:
            reason = ('' if self.action == 'stop' else
                      f' ({self._consecutive} consecutive non-finite '
                      'iterations)')
            raise NonFiniteLossError(
                f'{msg}{reason} Training stopped before the optimizer step, '
                'so the weights and the checkpoints on disk are finite. '
                'Common fixes: a lower learning rate or more warm-up, '
                'gradient clipping (optim_wrapper.clip_grad=dict('
                'max_norm=1.0)), bf16 instead of fp16, or '
                "custom_hooks=[dict(type='xcit_mm.NonFiniteLossHook', "
                "action='skip')] to skip such iterations.")
        self._skip_update = True
        self.skipped_iters.append(self._runner.iter + 1)
        self._runner.logger.warning(
            f'{msg} Skipped the optimizer step of this iteration '
            f'({self._consecutive} in a row, at most {self.max_skips}).')

    def _discard(self, optim_wrapper: OptimWrapper,
                 loss: torch.Tensor) -> None:
        """Backward (so every DDP rank runs the same collectives), then
        drop the gradients and restore the buffers: no step is taken."""
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        optim_wrapper.zero_grad()
        model = self._runner.model.module if is_model_wrapper(
            self._runner.model) else self._runner.model
        if self._buffers is not None:
            with torch.no_grad():
                for k, v in model.named_buffers():
                    if k in self._buffers:
                        v.copy_(self._buffers[k])
        self._skip_update = False

    # --------------------------------------------------------------- save
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # mmengine calls this on rank 0 only (Runner.save_checkpoint is
        # master_only): no collective here. A non-finite loss elsewhere
        # reaches rank 0's weights through the gradient all-reduce, which
        # the weight check below sees; the launcher (torchrun, srun
        # --kill-on-bad-exit) stops the other ranks when rank 0 fails.
        self._read_flag(runner, collective=False)
        if not self.check_weights_on_save:
            return
        bad = [
            k for k, v in checkpoint.get('state_dict', {}).items()
            if torch.is_tensor(v) and v.is_floating_point()
            and not torch.isfinite(v).all()
        ]
        if bad:
            raise NonFiniteWeightsError(
                f'Refusing to save a checkpoint at iteration {runner.iter} '
                f'(epoch {runner.epoch}): {len(bad)} tensors hold NaN or '
                f'inf, e.g. {bad[:3]}. The previous checkpoint is untouched; '
                'resume from it with a lower learning rate or gradient '
                'clipping.')


def _value(v) -> str:
    v = v.item() if torch.is_tensor(v) and v.numel() == 1 else v
    if isinstance(v, float):
        return 'nan' if math.isnan(v) else f'{v:.4g}'
    return str(v)
