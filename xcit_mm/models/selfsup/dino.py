"""DINO: self-distillation with no labels (Caron et al., 2021).

The student (backbone + :class:`~xcit_mm.models.heads.DINOHead`) learns to
match a momentum teacher over multi-crop views. The teacher update after
each optimizer step, the last-layer freeze and DINO's per-parameter gradient
clipping live in :class:`xcit_mm.engine.DINOHook`; a config must use it.
"""
import copy
import math
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.structures import DataSample

from xcit_mm.registry import MODELS
from xcit_mm.utils.errors import ConfigError, InputShapeError


def teacher_momentum(it: int, max_iters: int, base: float = 0.996,
                     end: float = 1.0) -> float:
    """DINO's teacher momentum after optimizer step ``it`` (0-based): a
    cosine from ``base`` at step 0 to ``end`` at ``max_iters``."""
    return end - (end - base) * (math.cos(math.pi * it / max_iters) + 1) / 2


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
    """DINO with a momentum teacher.

    - **Student**: ``backbone`` + ``head``, trained on all views. Views are
      batched by resolution (consecutive views of one size go through the
      backbone together), then the head runs once on all features.
    - **Teacher**: a copy of the student made after weight initialisation,
      without stochastic depth or dropout, with ``requires_grad=False``. It
      sees the global views only, runs under ``no_grad`` in train mode
      (batch statistics, its own BN buffers) and is updated by
      :meth:`update_teacher` -- an EMA of the student's parameters, called
      by :class:`xcit_mm.engine.DINOHook` after every optimizer step. It is
      saved in checkpoints (``teacher.*``) and left out of the optimizer by
      :class:`xcit_mm.engine.DINOOptimWrapperConstructor`.
    - **Loss**: :class:`xcit_mm.models.DINOLoss` with its centre; the
      teacher temperature follows the epoch from mmengine's message hub.

    Why not mmpretrain's ``CosineEMA``: its first update copies the student
    (DINO averages with momentum 0.996 from the first step), it overwrites
    the teacher's buffers with the student's (DINO's teacher keeps its own
    BN statistics), and MoCo v3 calls it before the forward, one step late.

    Any backbone whose last output is a (B, C) class-token feature works:
    ``xcit_mm.XCiT`` (``out_type='cls_token'``) or mmpretrain's
    ``VisionTransformer`` (``out_type='cls_token'``).

    Args:
        backbone (dict): Backbone config.
        head (dict): ``xcit_mm.DINOHead`` config.
        loss (dict): ``xcit_mm.DINOLoss`` config; its ``out_channels``
            defaults to the head's.
        num_global_views (int): The first views are global (seen by the
            teacher). Defaults to 2.
        data_preprocessor (dict, optional): Defaults to mmpretrain's
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 loss: dict = dict(type='xcit_mm.DINOLoss'),
                 num_global_views: int = 2,
                 data_preprocessor=None,
                 init_cfg=None) -> None:
        super().__init__(backbone=backbone, head=head,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if num_global_views < 1:
            raise ConfigError('DINO num_global_views must be >= 1, got '
                              f'{num_global_views}.')
        self.num_global_views = num_global_views
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
        epoch = MessageHub.get_current_instance().get_info('epoch', 0)
        loss, stats = self.dino_loss(student_out, teacher_out, epoch)
        return dict(loss=loss, **stats)
