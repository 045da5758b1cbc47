"""DeiT's knowledge-distillation term (Touvron et al., 2021), as used by the
official XCiT training."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from xcit_mm.registry import MODELS

KD_TYPES = ('hard', 'soft')


@MODELS.register_module()
class DistillationLoss(nn.Module):
    """The distillation term KD(student logits, teacher logits).

    - ``'hard'``: cross-entropy against the teacher's argmax,
      ``CE(s, argmax t)``, averaged over the batch.
    - ``'soft'``: ``KL(softmax(t/τ) || softmax(s/τ)) · τ²``, summed and
      divided by ``s.numel()`` (batch x classes), exactly DeiT's
      normalisation (``F.kl_div(log_softmax(s/τ), log_softmax(t/τ),
      reduction='sum', log_target=True) · τ² / s.numel()``).

    The classifier weighs it: ``loss = (1-α)·CE(s, target) + α·KD`` (see
    :class:`xcit_mm.models.DistillImageClassifier`). Both logits are cast to
    float32, so the term is exact under mixed precision.

    Args:
        kd_type (str): ``'hard'`` or ``'soft'``. Defaults to ``'hard'``.
        tau (float): Softmax temperature of the soft term (unused by
            ``'hard'``). Defaults to 1.0.
    """

    def __init__(self, kd_type: str = 'hard', tau: float = 1.0):
        super().__init__()
        if kd_type not in KD_TYPES:
            raise ValueError(f'DistillationLoss kd_type must be one of '
                             f'{KD_TYPES}, got {kd_type!r}.')
        if tau <= 0:
            raise ValueError(f'DistillationLoss tau must be > 0, got {tau}.')
        self.kd_type = kd_type
        self.tau = float(tau)

    def forward(self, student: torch.Tensor,
                teacher: torch.Tensor) -> torch.Tensor:
        """Return the (scalar) distillation term.

        Args:
            student (Tensor): Student logits (B, K).
            teacher (Tensor): Teacher logits (B, K), no gradient needed.
        """
        if student.shape != teacher.shape:
            raise ValueError(
                f'Student logits {tuple(student.shape)} and teacher logits '
                f'{tuple(teacher.shape)} differ: the teacher must predict the '
                'same classes as the student (set its num_classes).')
        student, teacher = student.float(), teacher.detach().float()
        if self.kd_type == 'hard':
            return F.cross_entropy(student, teacher.argmax(dim=1))
        t = self.tau
        return F.kl_div(
            F.log_softmax(student / t, dim=1),
            F.log_softmax(teacher / t, dim=1),
            reduction='sum',
            log_target=True) * (t * t) / student.numel()

    def extra_repr(self) -> str:
        return f'kd_type={self.kd_type!r}, tau={self.tau}'
