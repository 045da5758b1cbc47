"""What DINO's training needs from the runner: the position in training
for the model's schedules, checks of the run's setup, collapse warnings."""
import math
from typing import Dict, Optional

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from xcit_mm.models.selfsup.dino import DINO, DINODistributedDataParallel
from xcit_mm.registry import HOOKS
from xcit_mm.runtime import NonFiniteLossHook
from xcit_mm.utils.errors import ConfigError

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


@HOOKS.register_module()
class DINOHook(Hook):
    """Runner-side companion of :class:`xcit_mm.models.DINO`.

    The training step itself (loss, clipping, last-layer freeze, optimizer
    step, teacher update) is :meth:`xcit_mm.models.DINO.train_step`. This
    hook does what only the runner knows:

    - **position in training**: before every iteration it gives the model
      ``runner.iter``, ``runner.max_iters`` and the number of iterations per
      epoch (the length of the training data loader), from which the model
      computes its teacher temperature, teacher momentum and last-layer
      freeze (:meth:`~xcit_mm.models.DINO.set_train_progress`);
    - **setup checks**, before training: the teacher is a separate copy of
      the student and none of its parameters is in the optimizer
      (``optim_wrapper.constructor='xcit_mm.DINOOptimWrapperConstructor'``),
      a multi-process run wraps the model in
      :class:`~xcit_mm.models.selfsup.DINODistributedDataParallel`, and no
      ``NonFiniteLossHook`` is set to skip steps (it can only stop DINO);
    - **collapse**: the loss reports the teacher's mean output entropy
      ``teacher_entropy``, the entropy of its batch-mean output
      ``teacher_batch_entropy``, ``kl_div`` and ``center_norm``. When the
      output stays uniform (``teacher_entropy > ln(K) - collapse_tol``) or on
      one prototype (``teacher_batch_entropy < collapse_tol``) for
      ``collapse_patience`` updates in a row, a warning names the likely
      causes.

    Args:
        collapse_patience (int): Iterations before a collapse warning.
            Defaults to 100.
        collapse_tol (float): Tolerance in nats. Defaults to 0.1.
    """

    priority = 'NORMAL'

    def __init__(self,
                 collapse_patience: int = 100,
                 collapse_tol: float = 0.1) -> None:
        self.collapse_patience = collapse_patience
        self.collapse_tol = collapse_tol
        self._streaks = dict(uniform=0, one_hot=0)

    @staticmethod
    def _model(runner) -> nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if not isinstance(model, DINO):
            raise ConfigError(
                f'DINOHook works with a DINO model (xcit_mm.DINO); this '
                f'config trains a {type(model).__name__}. Remove the hook or '
                "use model=dict(type='xcit_mm.DINO', ...).")
        if is_model_wrapper(runner.model) and not isinstance(
                runner.model, DINODistributedDataParallel):
            raise ConfigError(
                f'DINO is wrapped in {type(runner.model).__name__}, which '
                "would not run DINO's training step. Set model_wrapper_cfg="
                "dict(type='xcit_mm.DINODistributedDataParallel', "
                'broadcast_buffers=False).')
        if any(isinstance(h, NonFiniteLossHook) and h.action == 'skip'
               for h in runner.hooks):
            raise ConfigError(
                "NonFiniteLossHook(action='skip') skips the step inside "
                "optim_wrapper.update_params, which DINO's training step "
                "does not call (it clips between backward and step); use "
                "action='stop' with DINO.")
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

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self._model(runner).set_train_progress(
            runner.iter, runner.max_iters, len(runner.train_dataloader))

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch=None, outputs: Optional[Dict] = None):
        if outputs and 'teacher_momentum' in outputs:  # an update iteration
            self._watch_collapse(runner, outputs)

    # ----------------------------------------------------------- collapse
    def _watch_collapse(self, runner, outputs: Dict) -> None:
        if 'teacher_entropy' not in outputs:
            return
        max_entropy = math.log(self._model(runner).num_prototypes)
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
