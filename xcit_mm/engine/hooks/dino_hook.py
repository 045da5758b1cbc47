"""The training-time parts of DINO that sit around the optimizer step."""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from xcit_mm.registry import HOOKS
from xcit_mm.utils.errors import ConfigError

CLIP_MODES = ('per_param', 'global')

UNIFORM_CAUSES = (
    'the teacher output has stayed uniform (loss stuck near ln(out_dim)). '
    'Likely causes: a teacher temperature too high for the data '
    '(teacher_temp / warmup_teacher_temp), a learning rate too high or a '
    'warm-up too short, a batch too small for the centring, or a teacher '
    'that is not a separate copy of the student.')
ONE_HOT_CAUSES = (
    'the teacher puts (almost) every image on the same prototype. Likely '
    'causes: centring too weak (center_momentum near 1) or too few '
    'iterations for it to act, a teacher temperature too low, or a student '
    'that already collapsed (look at kl_div: near 0 means it copies the '
    'teacher).')


def clip_grad_per_param_(params: Sequence[nn.Parameter],
                         max_norm: float) -> Optional[torch.Tensor]:
    """DINO's clipping: each gradient on its own to norm ``max_norm``.

    ``grad <- grad * min(1, max_norm / (||grad|| + 1e-6))`` for every
    parameter with a gradient. Returns the norms before clipping (or None
    when no parameter has a gradient).
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    norms = torch.stack(torch._foreach_norm(grads))
    coefs = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, list(coefs.unbind()))
    return norms


@HOOKS.register_module()
class DINOHook(Hook):
    """Teacher update, last-layer freeze, clipping and collapse watch.

    For a :class:`xcit_mm.models.DINO` model:

    - **teacher**: after every optimizer step (0-based ``it`` of
      ``max_iters``), ``teacher <- m * teacher + (1 - m) * student`` with
      ``m = end - (end - base) * (cos(pi * it / max_iters) + 1) / 2``,
      DINO's cosine from ``momentum`` to ``end_momentum``; logged as
      ``teacher_momentum``;
    - **gradients** (an optimizer step pre-hook, so after AMP unscaling and
      before the step): clipped to ``clip_grad`` -- per parameter by
      default (DINO's rule) or by their global norm (``clip_mode=
      'global'``); the maximum per-parameter norm before clipping is logged
      as ``grad_norm_max``. Then, during the first ``freeze_last_layer``
      epochs, the gradients of the head's ``last_layer`` are dropped, so
      the optimizer (AdamW included) leaves it untouched;
    - **collapse**: the loss reports the teacher's mean output entropy
      ``teacher_entropy``, the entropy of its batch-mean output
      ``teacher_batch_entropy``, ``kl_div`` and ``center_norm``. When the
      output stays uniform (``teacher_entropy > ln(K) - collapse_tol``) or on
      one prototype (``teacher_batch_entropy < collapse_tol``) for
      ``collapse_patience`` iterations in a row, a warning names the likely
      causes.

    Args:
        momentum (float): Teacher momentum at the first step. Defaults to
            0.996.
        end_momentum (float): At the end of training. Defaults to 1.0.
        clip_grad (float, optional): Clipping threshold; None turns
            clipping off. Defaults to 3.0.
        clip_mode (str): ``'per_param'`` or ``'global'``. Defaults to
            ``'per_param'``.
        freeze_last_layer (int): Epochs during which the last head layer is
            not updated. Defaults to 1.
        collapse_patience (int): Iterations before a collapse warning.
            Defaults to 100.
        collapse_tol (float): Tolerance in nats. Defaults to 0.1.
    """

    priority = 'NORMAL'

    def __init__(self,
                 momentum: float = 0.996,
                 end_momentum: float = 1.0,
                 clip_grad: Optional[float] = 3.0,
                 clip_mode: str = 'per_param',
                 freeze_last_layer: int = 1,
                 collapse_patience: int = 100,
                 collapse_tol: float = 0.1) -> None:
        if clip_mode not in CLIP_MODES:
            raise ConfigError(f'DINOHook clip_mode must be one of '
                              f'{CLIP_MODES}, got {clip_mode!r}.')
        if not 0 <= momentum <= end_momentum <= 1:
            raise ConfigError(
                'DINOHook needs 0 <= momentum <= end_momentum <= 1, got '
                f'momentum={momentum}, end_momentum={end_momentum}.')
        self.momentum = momentum
        self.end_momentum = end_momentum
        self.clip_grad = clip_grad
        self.clip_mode = clip_mode
        self.freeze_last_layer = freeze_last_layer
        self.collapse_patience = collapse_patience
        self.collapse_tol = collapse_tol
        self._handle = None
        self._runner = None
        self._streaks = dict(uniform=0, one_hot=0)

    @staticmethod
    def _model(runner) -> nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def momentum_at(self, it: int, max_iters: int) -> float:
        from xcit_mm.models.selfsup.dino import teacher_momentum
        return teacher_momentum(it, max_iters, self.momentum,
                                self.end_momentum)

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if not hasattr(model, 'update_teacher'):
            raise ConfigError(
                f'DINOHook works with a DINO model (xcit_mm.DINO); this '
                f'config trains a {type(model).__name__}. Remove the hook or '
                "use model=dict(type='xcit_mm.DINO', ...).")
        teacher_ids = {id(p) for p in model.teacher_params()}
        if teacher_ids & {id(p) for p in model.student_params()}:
            raise ConfigError(
                'The DINO teacher shares parameters with the student; it '
                'must be a separate copy (built by xcit_mm.DINO).')
        optimizer = runner.optim_wrapper.optimizer
        in_optim = [p for g in optimizer.param_groups for p in g['params']
                    if id(p) in teacher_ids]
        if in_optim:
            raise ConfigError(
                f'{len(in_optim)} teacher parameters are in the optimizer. '
                'Set optim_wrapper.constructor='
                "'xcit_mm.DINOOptimWrapperConstructor'.")
        self._runner = runner
        self._student = [p for p in model.student_params() if p.requires_grad]
        head = model.head
        self._last_layer = list(head.last_layer.parameters()) if hasattr(
            head, 'last_layer') else []
        self._handle = optimizer.register_step_pre_hook(self._before_step)

    def after_train(self, runner) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # -------------------------------------------------------- around step
    def _before_step(self, optimizer, args, kwargs) -> None:
        runner = self._runner
        if self.clip_grad is not None:
            norms = clip_grad_per_param_(self._student, self.clip_grad) \
                if self.clip_mode == 'per_param' else None
            if self.clip_mode == 'global':
                params = [p for p in self._student if p.grad is not None]
                if params:
                    total = nn.utils.clip_grad_norm_(params, self.clip_grad)
                    runner.message_hub.update_scalar('train/grad_norm',
                                                     float(total))
            elif norms is not None:
                runner.message_hub.update_scalar('train/grad_norm_max',
                                                 float(norms.max()))
        if runner.epoch < self.freeze_last_layer:
            for p in self._last_layer:
                p.grad = None

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch=None, outputs: Optional[Dict] = None):
        if not runner.optim_wrapper.should_update():
            return  # gradient accumulation: no step this iteration
        m = self.momentum_at(runner.iter, runner.max_iters)
        self._model(runner).update_teacher(m)
        runner.message_hub.update_scalar('train/teacher_momentum', m)
        if outputs:
            self._watch_collapse(runner, outputs)

    # ----------------------------------------------------------- collapse
    def _watch_collapse(self, runner, outputs: Dict) -> None:
        model = self._model(runner)
        if 'teacher_entropy' not in outputs:
            return
        max_entropy = math.log(model.dino_loss.out_channels)
        checks = dict(
            uniform=float(outputs['teacher_entropy']) >
            max_entropy - self.collapse_tol,
            one_hot=float(outputs['teacher_batch_entropy']) <
            self.collapse_tol)
        for kind, bad in checks.items():
            self._streaks[kind] = self._streaks[kind] + 1 if bad else 0
            if self._streaks[kind] == self.collapse_patience:
                causes = UNIFORM_CAUSES if kind == 'uniform' \
                    else ONE_HOT_CAUSES
                print_log(
                    f'DINO collapse warning at iteration {runner.iter + 1}: '
                    f'for {self.collapse_patience} iterations {causes} '
                    f'(teacher_entropy '
                    f'{float(outputs["teacher_entropy"]):.3f} of max '
                    f'{max_entropy:.3f}, teacher_batch_entropy '
                    f'{float(outputs["teacher_batch_entropy"]):.3f}, '
                    f'kl_div {float(outputs["kl_div"]):.4f}, center_norm '
                    f'{float(outputs["center_norm"]):.3f})',
                    logger='current', level=30)
