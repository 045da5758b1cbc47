"""Build the optimizer of a DINO model over the student only."""
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from xcit_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DINOOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor applied to the student alone.

    A :class:`xcit_mm.models.DINO` model holds its momentum teacher as the
    submodule ``teacher`` (saved in checkpoints as ``teacher.*``); its
    parameters must never reach the optimizer. ``requires_grad=False`` on
    the teacher is not enough for that: mmengine's default constructor
    passes every parameter of the model to the optimizer without a
    ``paramwise_cfg``, and with one it adds each frozen parameter as a group
    of its own. The teacher's parameters get no gradient, so AdamW would
    leave them alone, but the optimizer's groups and state (checkpoints,
    the converter of official DINO checkpoints, which maps DINO's two
    AdamW groups by name, and the parameter schedulers) would carry the
    teacher too. This constructor builds the optimizer over the student's
    submodules only. The student's parameters keep their names
    (``backbone.*``, ``head.*``), so ``paramwise_cfg`` rules match as usual.

    Usage::

        optim_wrapper = dict(
            constructor='xcit_mm.DINOOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.04),
            paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        model = getattr(model, 'module', model)  # DDP / MMDDP wrapper
        if not hasattr(model, 'teacher'):
            return super().__call__(model)
        student = nn.Module()
        for name, child in model.named_children():
            if name != 'teacher':
                student.add_module(name, child)  # shared, not copied
        return super().__call__(student)
