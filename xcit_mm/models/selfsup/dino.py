"""DINO: self-distillation with no labels (Caron et al., 2021).

The student (backbone + :class:`~xcit_mm.models.heads.DINOHead`) learns to
match a momentum teacher over multi-crop views. One training iteration is
:meth:`DINO.train_step`, which reads top to bottom in the order of the
official ``train_one_epoch``: loss, backward, gradient clipping, last-layer
freeze, optimizer step, teacher update. Its schedules (teacher temperature,
teacher momentum, last-layer freeze) are functions of the iteration that
:class:`xcit_mm.engine.DINOHook` gives the model before each iteration.
"""
import copy
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.structures import DataSample

from xcit_mm.registry import MODEL_WRAPPERS, MODELS
from xcit_mm.runtime.mmengine_private import run_forward
from xcit_mm.utils.errors import ConfigError, InputShapeError

CLIP_MODES = ('per_param', 'global')


def teacher_momentum(it: int, max_iters: int, base: float = 0.996,
                     end: float = 1.0) -> float:
    """DINO's teacher momentum after optimizer step ``it`` (0-based): a
    cosine from ``base`` at step 0 to ``end`` at ``max_iters``."""
    return end - (end - base) * (math.cos(math.pi * it / max_iters) + 1) / 2


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


def _no_stochastic_depth(module: nn.Module) -> None:
    """Turn off stochastic depth and dropout (the official teacher is built
    without them)."""
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.
        elif hasattr(m, 'drop_prob'):  # mmcv / timm DropPath
            m.drop_prob = 0.


@MODELS.register_module()
class DINO(BaseSelfSupervisor):
    """DINO with a momentum teacher and its own training step.

    - **Student**: ``backbone`` + ``head``, trained on all views. Views are
      batched by resolution (consecutive views of one size go through the
      backbone together), then the head runs once on all features.
    - **Teacher**: a copy of the student made after weight initialisation,
      without stochastic depth or dropout, with ``requires_grad=False``. It
      sees the global views only, runs under ``no_grad`` in train mode
      (batch statistics, its own BN buffers) and is updated by
      :meth:`update_teacher`, an EMA of the student's parameters, after
      every optimizer step. It is saved in checkpoints (``teacher.*``) and
      left out of the optimizer by
      :class:`xcit_mm.engine.DINOOptimWrapperConstructor`.
    - **Loss**: :class:`xcit_mm.models.DINOLoss` with its centre.
    - **Training step**: :meth:`train_step`, DINO's iteration in the
      official order. Its schedules depend on the position in training,
      which :meth:`set_train_progress` sets (``xcit_mm.DINOHook`` calls it
      before every iteration): the epoch of the teacher temperature and of
      the last-layer freeze is ``iteration // iters_per_epoch``, so
      iteration-based training follows the same schedules.

    Why not mmpretrain's ``CosineEMA``: its first update copies the student
    (DINO averages with momentum 0.996 from the first step), it overwrites
    the teacher's buffers with the student's (DINO's teacher keeps its own
    BN statistics), and MoCo v3 calls it before the forward, one step late.

    Any backbone whose last output is a (B, C) class-token feature works:
    ``xcit_mm.XCiT`` (``out_type='cls_token'``) or mmpretrain's
    ``VisionTransformer`` (``out_type='cls_token'``).

    In multi-process training the model must be wrapped by
    :class:`DINODistributedDataParallel` (``model_wrapper_cfg=dict(
    type='xcit_mm.DINODistributedDataParallel')``, as in
    ``configs/_base_/schedules/dino_adamw_bs1024_300e.py``): mmengine's
    ``MMDistributedDataParallel`` runs a generic step of its own instead of
    :meth:`train_step`.

    Args:
        backbone (dict): Backbone config.
        head (dict): ``xcit_mm.DINOHead`` config.
        loss (dict): ``xcit_mm.DINOLoss`` config; its ``out_channels``
            defaults to the head's.
        num_global_views (int): The first views are global (seen by the
            teacher). Defaults to 2.
        momentum (float): Teacher momentum at the first step; it follows a
            cosine to ``end_momentum`` at the last iteration. Defaults to
            0.996.
        end_momentum (float): Defaults to 1.0.
        clip_grad (float, optional): Gradient clipping threshold; None turns
            clipping off. Defaults to 3.0.
        clip_mode (str): ``'per_param'`` (DINO's rule: each parameter's
            gradient on its own) or ``'global'`` (the norm of all
            gradients together). Defaults to ``'per_param'``.
        freeze_last_layer (int): Epochs during which the head's
            ``last_layer`` is not updated. Defaults to 1.
        data_preprocessor (dict, optional): Defaults to mmpretrain's
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 loss: dict = dict(type='xcit_mm.DINOLoss'),
                 num_global_views: int = 2,
                 momentum: float = 0.996,
                 end_momentum: float = 1.0,
                 clip_grad: Optional[float] = 3.0,
                 clip_mode: str = 'per_param',
                 freeze_last_layer: int = 1,
                 data_preprocessor=None,
                 init_cfg=None) -> None:
        super().__init__(backbone=backbone, head=head,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if num_global_views < 1:
            raise ConfigError('DINO num_global_views must be >= 1, got '
                              f'{num_global_views}.')
        if not 0 <= momentum <= end_momentum <= 1:
            raise ConfigError(
                'DINO needs 0 <= momentum <= end_momentum <= 1, got '
                f'momentum={momentum}, end_momentum={end_momentum}.')
        if clip_mode not in CLIP_MODES:
            raise ConfigError(f'DINO clip_mode must be one of {CLIP_MODES}, '
                              f'got {clip_mode!r}.')
        self.num_global_views = num_global_views
        self.momentum = momentum
        self.end_momentum = end_momentum
        self.clip_grad = clip_grad
        self.clip_mode = clip_mode
        self.freeze_last_layer = freeze_last_layer
        # position in training, set before each iteration (not saved: the
        # hook sets it again after a resume)
        self.iteration: Optional[int] = None
        self.max_iters: Optional[int] = None
        self.iters_per_epoch: Optional[int] = None
        loss = dict(loss)
        if 'out_channels' not in loss and hasattr(self.head, 'out_channels'):
            loss['out_channels'] = self.head.out_channels
        self.dino_loss = MODELS.build(loss)
        # A ModuleDict has no init_weights, so mmengine's recursive
        # initialisation leaves the teacher alone; init_weights copies the
        # initialised student into it.
        self.teacher = nn.ModuleDict(
            dict(backbone=copy.deepcopy(self.backbone),
                 head=copy.deepcopy(self.head)))
        _no_stochastic_depth(self.teacher)
        self.teacher.requires_grad_(False)

    # ------------------------------------------------------------ schedules
    def set_train_progress(self, iteration: int, max_iters: int,
                           iters_per_epoch: int) -> None:
        """Where training is: the 0-based ``iteration`` about to run, of
        ``max_iters``, with ``iters_per_epoch`` iterations per pass over the
        data. Called by :class:`xcit_mm.engine.DINOHook` before every
        iteration."""
        if not 0 <= iteration < max_iters or iters_per_epoch < 1:
            raise ValueError(
                f'DINO training progress out of range: iteration '
                f'{iteration} of {max_iters}, {iters_per_epoch} iterations '
                'per epoch.')
        self.iteration = iteration
        self.max_iters = max_iters
        self.iters_per_epoch = iters_per_epoch

    @property
    def epoch(self) -> int:
        """The 0-based epoch of the current iteration (0 before
        :meth:`set_train_progress`)."""
        if self.iteration is None:
            return 0
        return self.iteration // self.iters_per_epoch

    def teacher_momentum(self) -> float:
        """The EMA momentum of the teacher update of this iteration."""
        return teacher_momentum(self.iteration, self.max_iters,
                                self.momentum, self.end_momentum)

    def last_layer_frozen(self) -> bool:
        """Whether the head's last layer stays unchanged this iteration."""
        return self.epoch < self.freeze_last_layer

    @property
    def num_prototypes(self) -> int:
        """K, the number of outputs of the head (a uniform teacher output
        has entropy ln K)."""
        return self.dino_loss.out_channels

    # ------------------------------------------------------------ training
    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper,
                   forward_module: Optional[nn.Module] = None
                   ) -> Dict[str, torch.Tensor]:
        """One DINO iteration, in the order of the official
        ``train_one_epoch``.

        1. forward and loss: the teacher on the global views, the student
           on all views, :class:`DINOLoss` at this epoch's teacher
           temperature (its teacher outputs are kept for the centre);
        2. backward, through ``optim_wrapper`` (the loss divided for
           gradient accumulation, scaled under AMP).

        On an iteration that updates the weights
        (``optim_wrapper.should_update()``; every iteration without
        gradient accumulation):

        3. the loss's centre moves by the mean teacher output of the
           iterations since the last update (one large batch's mean under
           gradient accumulation); AMP: unscale the gradients
           (``AmpOptimWrapper``'s loss scaler);
        4. clip the student's gradients to ``clip_grad``;
        5. during the first ``freeze_last_layer`` epochs, drop the
           gradients of the head's ``last_layer``, so the optimizer (AdamW
           included) leaves it unchanged;
        6. optimizer step (AMP: skipped on inf / NaN gradients, loss scale
           updated), gradients zeroed;
        7. teacher update: ``teacher <- m * teacher + (1 - m) * student``
           with this iteration's momentum ``m``.

        Args:
            data (dict | tuple | list): A batch from the data loader.
            optim_wrapper (OptimWrapper): The student's optimizer wrapper.
                Its own ``clip_grad`` must be unset: DINO clips in step 4.
            forward_module (nn.Module, optional): The module that runs the
                forward pass; :class:`DINODistributedDataParallel` passes
                itself, so that the gradients are all-reduced. Defaults to
                the model itself.

        Returns:
            dict: The loss terms and monitors of :class:`DINOLoss`; on an
            update iteration also ``teacher_momentum`` and the gradient
            norm before clipping (``grad_norm_max``, the largest per
            parameter, or ``grad_norm`` with ``clip_mode='global'``).
        """
        if self.iteration is None:
            raise ConfigError(
                'DINO.train_step needs the position in training; add '
                "dict(type='xcit_mm.DINOHook') to custom_hooks (or call "
                'set_train_progress before each step).')
        if optim_wrapper.clip_grad_kwargs:
            raise ConfigError(
                'DINO clips gradients itself (the model\'s clip_grad and '
                'clip_mode); remove optim_wrapper.clip_grad.')
        forward_module = forward_module or self
        # 1. forward and loss
        with optim_wrapper.optim_context(forward_module), \
                self.dino_loss.accumulate_center():
            data = self.data_preprocessor(data, True)
            losses = run_forward(forward_module, data, mode='loss')
        loss, log_vars = self.parse_losses(losses)
        # 2. backward
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        if not optim_wrapper.should_update():
            return log_vars  # accumulating gradients
        # 3. centre update; unscale
        self.dino_loss.update_center()
        if isinstance(optim_wrapper, AmpOptimWrapper):
            optim_wrapper.loss_scaler.unscale_(optim_wrapper.optimizer)
        # 4. clip
        log_vars.update(self.clip_gradients())
        # 5. last-layer freeze
        if self.last_layer_frozen() and hasattr(self.head, 'last_layer'):
            for p in self.head.last_layer.parameters():
                p.grad = None
        # 6. optimizer step
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        # 7. teacher update
        momentum = self.teacher_momentum()
        self.update_teacher(momentum)
        log_vars['teacher_momentum'] = loss.new_tensor(momentum)
        return log_vars

    def clip_gradients(self) -> Dict[str, torch.Tensor]:
        """Clip the student's gradients to ``clip_grad`` (``clip_mode``);
        returns the norm before clipping to log (empty when clipping is off
        or no gradient exists)."""
        if self.clip_grad is None:
            return {}
        params = [p for p in self.student_params()
                  if p.requires_grad and p.grad is not None]
        if not params:
            return {}
        if self.clip_mode == 'global':
            return dict(grad_norm=nn.utils.clip_grad_norm_(
                params, self.clip_grad).detach())
        norms = clip_grad_per_param_(params, self.clip_grad)
        return dict(grad_norm_max=norms.max())

    # ------------------------------------------------------------ teacher
    def init_weights(self) -> None:
        super().init_weights()
        self.copy_student_to_teacher()

    @torch.no_grad()
    def copy_student_to_teacher(self) -> None:
        """Teacher <- student (parameters and buffers)."""
        for name in ('backbone', 'head'):
            self.teacher[name].load_state_dict(
                getattr(self, name).state_dict())

    def student_params(self) -> List[nn.Parameter]:
        return list(self.backbone.parameters()) + list(
            self.head.parameters())

    def teacher_params(self) -> List[nn.Parameter]:
        return list(self.teacher['backbone'].parameters()) + list(
            self.teacher['head'].parameters())

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """``teacher <- m * teacher + (1 - m) * student`` for every
        parameter (buffers are not averaged)."""
        t_params, s_params = self.teacher_params(), self.student_params()
        assert len(t_params) == len(s_params)
        if any(t is s for t, s in zip(t_params, s_params)):
            raise RuntimeError('DINO teacher and student share parameters; '
                               'the teacher must be a separate copy.')
        torch._foreach_mul_(t_params, momentum)
        torch._foreach_add_(t_params, [s.detach() for s in s_params],
                            alpha=1 - momentum)

    # ------------------------------------------------------------ forward
    @staticmethod
    def _features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
        feats = backbone(x)
        if isinstance(feats, (tuple, list)):
            feats = feats[-1]
        if feats.dim() != 2:
            raise InputShapeError(
                'DINO needs a backbone that returns a (B, C) class-token '
                f'feature, got shape {tuple(feats.shape)}. Set the '
                "backbone's out_type='cls_token'.")
        return feats

    def multi_crop_forward(
            self, backbone: nn.Module, head: nn.Module,
            views: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Backbone on each run of same-sized views, head once on all.

        Returns one (B, K) logit tensor per view."""
        feats, start = [], 0
        while start < len(views):
            end = start + 1
            while end < len(views) and \
                    views[end].shape[-2:] == views[start].shape[-2:]:
                end += 1
            feats.append(self._features(backbone,
                                        torch.cat(views[start:end])))
            start = end
        out = head(torch.cat(feats))  # (V * B, K)
        return list(out.chunk(len(views)))

    def loss(self, inputs: List[torch.Tensor],
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """The DINO loss of a batch of multi-crop views.

        Args:
            inputs (list[Tensor]): One (B, C, H, W) tensor per view, the
                ``num_global_views`` global views first.
            data_samples (list[DataSample]): Unused (no labels).

        Returns:
            dict: ``loss`` and the monitors of :class:`DINOLoss` (logged,
            not optimised).
        """
        # 2 global views and no local ones is DINO's
        # ``--local_crops_number 0``: each global view teaches the other
        need = max(2, self.num_global_views)
        if not isinstance(inputs, (list, tuple)) or len(inputs) < need:
            n = len(inputs) if isinstance(inputs, (list, tuple)) else 1
            raise InputShapeError(
                f'DINO needs at least {need} views per image (the '
                f'{self.num_global_views} global ones first), got {n}. Use '
                'the MultiView transform in the training pipeline (see '
                'configs/dino/).')
        global_views = inputs[:self.num_global_views]
        with torch.no_grad():
            teacher_out = self.multi_crop_forward(
                self.teacher['backbone'], self.teacher['head'], global_views)
        student_out = self.multi_crop_forward(self.backbone, self.head,
                                              inputs)
        loss, stats = self.dino_loss(student_out, teacher_out, self.epoch)
        return dict(loss=loss, **stats)


@MODEL_WRAPPERS.register_module()
class DINODistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper that trains with :meth:`DINO.train_step`.

    mmengine's ``MMDistributedDataParallel.train_step`` runs a generic
    step (forward, ``optim_wrapper.update_params``) instead of the wrapped
    model's; this wrapper runs DINO's step, with the forward pass through
    DDP so that the student's gradients are averaged over the processes
    before they are clipped. Use it in every multi-process DINO run::

        model_wrapper_cfg = dict(
            type='xcit_mm.DINODistributedDataParallel',
            broadcast_buffers=False, find_unused_parameters=False)
    """

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        return self.module.train_step(data, optim_wrapper,
                                      forward_module=self)
