"""DINO's self-distillation loss with a centred, sharpened teacher."""
import contextlib
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size

from xcit_mm.registry import MODELS
from xcit_mm.utils.errors import ConfigError


@MODELS.register_module()
class DINOLoss(nn.Module):
    r"""Cross-entropy between the teacher's and the student's views.

    With teacher outputs :math:`t_i` of the global views :math:`i` and
    student outputs :math:`s_v` of all views :math:`v`:

    .. math::
        P_t^i = \mathrm{softmax}((t_i - c) / \tau_t), \quad
        \log P_s^v = \mathrm{log\_softmax}(s_v / \tau_s), \quad
        L = \frac{1}{|\{(i, v): v \ne i\}|} \sum_{i} \sum_{v \ne i}
            \mathrm{mean}_b\big(-\textstyle\sum_k P_t^i \log P_s^v\big)

    Pairs where student and teacher see the same view are skipped (18
    terms for 2 global + 8 local views). After the loss, the centre ``c``
    follows an EMA of the teacher's batch mean, summed over all processes
    (``c <- m c + (1 - m) mean(t)``). The teacher temperature rises linearly
    from ``warmup_teacher_temp`` to ``teacher_temp`` over the first
    ``warmup_teacher_temp_epochs`` epochs (one value per epoch, as
    ``np.linspace``), then stays. Softmaxes, logs and the centre run in
    float32, outside autocast.

    Under gradient accumulation the centre moves once per optimizer step,
    by the mean teacher output of all its micro-batches, as it would with
    one large batch: ``xcit_mm.DINO.train_step`` runs the forward passes
    inside :meth:`accumulate_center` and calls :meth:`update_center` on the
    iterations that step.

    Args:
        out_channels (int): Number of prototypes (the head's output).
            Defaults to 65536.
        student_temp (float): Defaults to 0.1.
        teacher_temp (float): Final teacher temperature. Defaults to 0.07
            (the XCiT recipe; DINO's default is 0.04).
        warmup_teacher_temp (float): Defaults to 0.04.
        warmup_teacher_temp_epochs (int): Defaults to 30.
        center_momentum (float): Defaults to 0.9.
    """

    def __init__(self,
                 out_channels: int = 65536,
                 student_temp: float = 0.1,
                 teacher_temp: float = 0.07,
                 warmup_teacher_temp: float = 0.04,
                 warmup_teacher_temp_epochs: int = 30,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        if min(student_temp, teacher_temp, warmup_teacher_temp) <= 0:
            raise ConfigError('DINOLoss temperatures must be positive, got '
                              f'student_temp={student_temp}, teacher_temp='
                              f'{teacher_temp}, warmup_teacher_temp='
                              f'{warmup_teacher_temp}.')
        self.out_channels = out_channels
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp = warmup_teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.center_momentum = center_momentum
        self.register_buffer('center', torch.zeros(1, out_channels))
        # teacher outputs awaiting a centre update: [sum (1, K), count]
        self._pending: Optional[list] = None
        self._collecting = False

    @contextlib.contextmanager
    def accumulate_center(self) -> Iterator[None]:
        """Within the block, :meth:`forward` adds the teacher outputs to a
        pending sum instead of moving the centre; :meth:`update_center`
        without an argument then moves it once, by their mean."""
        self._collecting = True
        try:
            yield
        finally:
            self._collecting = False

    def teacher_temp_at(self, epoch: int) -> float:
        """The teacher temperature of a (0-based) epoch."""
        n = self.warmup_teacher_temp_epochs
        if epoch >= n:
            return self.teacher_temp
        if n == 1:
            return self.warmup_teacher_temp
        return self.warmup_teacher_temp + (
            self.teacher_temp - self.warmup_teacher_temp) * epoch / (n - 1)

    def forward(
        self,
        student_outs: Sequence[torch.Tensor],
        teacher_outs: Sequence[torch.Tensor],
        epoch: int = 0,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Compute the loss and update the centre.

        Args:
            student_outs (Sequence[Tensor]): Student logits, one (B, K)
                tensor per view; the first ``len(teacher_outs)`` are the
                global views.
            teacher_outs (Sequence[Tensor]): Teacher logits of the global
                views, one (B, K) tensor each.
            epoch (int): The current epoch (teacher temperature).

        Returns:
            tuple: the loss, and detached monitors: ``teacher_entropy`` (mean
            entropy of a teacher output), ``teacher_batch_entropy`` (entropy
            of the batch-mean teacher output), ``kl_div`` (mean KL(teacher ||
            student) over the pairs), ``center_norm`` and ``teacher_temp``.
        """
        if len(student_outs) < 2 or len(teacher_outs) > len(student_outs):
            raise ConfigError(
                f'DINOLoss needs at least 2 student views and no more teacher '
                f'views than student views; got {len(student_outs)} student '
                f'and {len(teacher_outs)} teacher views.')
        temp = self.teacher_temp_at(epoch)
        with torch.autocast(student_outs[0].device.type, enabled=False):
            teacher = torch.cat([t.detach().float() for t in teacher_outs])
            log_q = F.log_softmax((teacher - self.center) / temp, dim=-1)
            q = log_q.exp().chunk(len(teacher_outs))
            total, n_terms = 0., 0
            for v, s in enumerate(student_outs):
                log_p = F.log_softmax(s.float() / self.student_temp, dim=-1)
                for i, q_i in enumerate(q):
                    if i == v:  # same view for student and teacher
                        continue
                    total = total + torch.sum(-q_i * log_p, dim=-1).mean()
                    n_terms += 1
            loss = total / n_terms
            with torch.no_grad():
                q_all = log_q.exp()
                entropy = -(q_all * log_q).sum(-1).mean()
                mean_q = q_all.mean(0)
                batch_entropy = -(mean_q * mean_q.clamp_min(1e-30).log()).sum()
                stats = dict(
                    teacher_entropy=entropy,
                    teacher_batch_entropy=batch_entropy,
                    # every teacher view meets the same number of student
                    # views, so mean CE - mean H(teacher) = mean KL
                    kl_div=loss.detach() - entropy,
                    center_norm=self.center.norm(),
                    teacher_temp=teacher.new_tensor(temp))
                if self._collecting:
                    self._collect(teacher)
                else:
                    self.update_center(teacher)
        return loss, stats

    @torch.no_grad()
    def _collect(self, teacher: torch.Tensor) -> None:
        batch_sum = teacher.float().sum(dim=0, keepdim=True)
        if self._pending is None:
            self._pending = [batch_sum, len(teacher)]
        else:
            self._pending[0] += batch_sum
            self._pending[1] += len(teacher)

    @torch.no_grad()
    def update_center(self, teacher: Optional[torch.Tensor] = None) -> None:
        """EMA of the teacher's mean output over all processes: of the
        (N, K) outputs ``teacher``, or without it of those collected under
        :meth:`accumulate_center` since the last update (none: no
        change)."""
        if teacher is None:
            if self._pending is None:
                return
            batch_sum, count = self._pending
            self._pending = None
        else:
            batch_sum = teacher.float().sum(dim=0, keepdim=True)
            count = len(teacher)
        all_reduce(batch_sum)  # sum; a no-op without distribution
        batch_center = batch_sum / (count * get_world_size())
        self.center.mul_(self.center_momentum).add_(
            batch_center, alpha=1 - self.center_momentum)
