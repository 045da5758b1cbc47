"""A linear learning-rate warm-up that may start at 0."""
from mmengine.optim import LinearLR

from xcit_mm.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class LinearWarmupLR(LinearLR):
    """mmengine's ``LinearLR``, computed in closed form so that
    ``start_factor`` may be 0.

    Iteration ``i`` of ``[begin, end)`` gets ``base_lr * (start_factor +
    (end_factor - start_factor) * i / (end - begin - 1))``: with
    ``start_factor=0`` that is DINO's warm-up, ``np.linspace(0, base_lr,
    end - begin)``, value for value (``utils.cosine_scheduler`` of
    facebookresearch/dino, ``start_warmup_value=0``). mmengine's
    ``LinearLR`` computes each value from the previous one (its chainable
    form), which divides by zero after a first value of 0, so it only takes
    a positive ``start_factor``.

    Being closed-form, it sets the learning rate from the optimizer's
    initial one and ignores any other scheduler that acts on the same
    iterations; use it, as DINO does, for a warm-up that no other learning
    rate scheduler overlaps. The arguments are ``LinearLR``'s.

    Example::

        param_scheduler = [
            dict(type='xcit_mm.LinearWarmupLR', start_factor=0.,
                 by_epoch=True, begin=0, end=10,
                 convert_to_iter_based=True),
            dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True,
                 begin=10, end=300, convert_to_iter_based=True),
        ]
    """

    def _get_value(self):
        steps = max(self.total_iters, 1)
        progress = min(self.last_step, steps) / steps
        factor = self.start_factor + (
            self.end_factor - self.start_factor) * progress
        return [base * factor for base in self.base_values]
