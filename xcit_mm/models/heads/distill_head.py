"""The classification head of DeiT-style distillation without a
distillation token, as in the official XCiT training."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.structures import DataSample

from xcit_mm.registry import MODELS
from xcit_mm.utils.errors import ConfigError


@MODELS.register_module()
class DistillClsHead(LinearClsHead):
    """mmpretrain's :class:`LinearClsHead` whose loss adds a distillation
    term computed from a teacher's logits.

    The class-token logits ``s`` feed both terms,

    ``loss = (1-α)·CE(s, y) + α·KD(s, t)``,

    where ``y`` is the target (mixed by Mixup/CutMix and smoothed by the
    head's ``loss``, e.g. ``LabelSmoothLoss``) and ``t`` are the teacher's
    logits on the same augmented batch, which the classifier
    (:class:`~xcit_mm.models.DistillImageClassifier`) passes to
    :meth:`loss`. KD is ``distill_loss``
    (:class:`~xcit_mm.models.DistillationLoss`: ``'hard'`` or ``'soft'``).
    The terms are logged as ``loss_cls`` and ``loss_distill``. Prediction
    is :class:`LinearClsHead`'s.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Input feature channels.
        distill_loss (dict | nn.Module): The KD term. Defaults to
            ``dict(type='xcit_mm.DistillationLoss', kd_type='hard',
            tau=1.0)``.
        alpha (float): Weight α of the KD term, in [0, 1]. Defaults to 0.5.
        **kwargs: The other arguments of :class:`LinearClsHead` (``loss``,
            ``topk``, ``cal_acc``, ``init_cfg``).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 distill_loss: Union[dict, nn.Module] = dict(
                     type='xcit_mm.DistillationLoss', kd_type='hard',
                     tau=1.0),
                 alpha: float = 0.5,
                 **kwargs):
        super().__init__(num_classes, in_channels, **kwargs)
        if not 0. <= alpha <= 1.:
            raise ConfigError(f'DistillClsHead alpha must be in [0, 1], got '
                              f'{alpha}.')
        self.alpha = float(alpha)
        self.distill_loss = (
            distill_loss if isinstance(distill_loss, nn.Module) else
            MODELS.build(distill_loss))

    def loss(self,
             feats,
             data_samples: List[DataSample],
             teacher_logits: Optional[torch.Tensor] = None,
             **kwargs) -> Dict[str, torch.Tensor]:
        """``loss_cls = (1-α)·CE(s, y)`` and ``loss_distill = α·KD(s, t)``.

        Args:
            feats (tuple[Tensor]): The backbone (and neck) features.
            data_samples (list[DataSample]): Targets (``gt_score`` after
                Mixup/CutMix, else ``gt_label``).
            teacher_logits (Tensor): The teacher's (B, num_classes) logits on
                the same batch.
        """
        if teacher_logits is None:
            raise ConfigError(
                'DistillClsHead needs the teacher logits: use it in '
                "type='xcit_mm.DistillImageClassifier', or use "
                "type='LinearClsHead' to train without a teacher.")
        cls_score = self(feats)  # (B, K)
        losses = self._get_loss(cls_score, data_samples, **kwargs)
        losses['loss_cls'] = (1. - self.alpha) * losses.pop('loss')
        losses['loss_distill'] = self.alpha * self.distill_loss(
            cls_score, teacher_logits)
        return losses
