"""Stop, or skip the step, when the training loss is NaN or infinite."""
import math
from typing import Dict, Optional

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

    The loss is checked after the forward pass and *before* the backward
    pass and the optimizer step, so a bad iteration never reaches the
    weights:

    - ``action='stop'`` raises :class:`NonFiniteLossError`, whose message
      names the iteration, the epoch and every loss term (the parameters
      are untouched; only the in-memory BN statistics saw the bad forward
      pass, and nothing is written after it);
    - ``action='skip'`` logs the same, then discards the iteration: no
      optimizer step, gradients zeroed, and the model's buffers (BN running
      statistics, which the bad forward pass may already have polluted) put
      back as they were before it. After ``max_skips`` consecutive skipped
      iterations it stops as with ``'stop'``.

    Either way, a checkpoint about to be written with non-finite weights
    (for another reason, e.g. an overflowing gradient) is refused with
    :class:`NonFiniteWeightsError` before anything is written, so the last
    checkpoint on disk stays usable.

    The check costs one host-device synchronisation per iteration (mmengine
    synchronises for logging anyway). In multi-process training the
    decision is all-reduced, so every rank stops or skips together. With
    gradient accumulation a skipped micro-batch discards the gradients
    accumulated so far in that window.

    ``tools/train.py`` adds ``NonFiniteLossHook(action='stop')`` unless the
    config has one; to skip instead::

        custom_hooks = [dict(type='xcit_mm.NonFiniteLossHook', action='skip',
                             max_skips=10)]

    Args:
        action (str): ``'stop'`` or ``'skip'``. Defaults to ``'stop'``.
        max_skips (int): With ``'skip'``, stop after this many consecutive
            non-finite iterations. Defaults to 10.
        check_weights_on_save (bool): Refuse to write a checkpoint with
            non-finite weights. Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'stop', max_skips: int = 10,
                 check_weights_on_save: bool = True) -> None:
        if action not in ACTIONS:
            raise ValueError(f'NonFiniteLossHook action must be one of '
                             f'{ACTIONS}, got {action!r}.')
        self.action = action
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
