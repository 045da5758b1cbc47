"""Fail clearly when a checkpoint does not belong to the model."""
import re
from typing import Sequence, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper

from xcit_mm.registry import HOOKS
from xcit_mm.utils.errors import CheckpointMismatchError
from xcit_mm.utils.state_dict import describe_comparison, load_checked

MODES = ('strict', 'finetune')


@HOOKS.register_module()
class CheckpointMatchHook(Hook):
    """Check every loaded checkpoint against the model before it is used.

    mmengine's ``Runner.load_checkpoint`` and ``Runner.resume`` load with
    ``strict=False``: a checkpoint of another model only logs warnings about
    missing and mismatched keys, and the run goes on with random weights
    (evaluating them, or resuming from them). This hook runs in
    ``after_load_checkpoint``, before the weights are copied, and raises
    :class:`~xcit_mm.utils.errors.CheckpointMismatchError` with the counts,
    examples and the fix. The check is
    :func:`xcit_mm.utils.state_dict.load_checked` without the loading, so
    the rules and messages are those of every other loader in xcit_mm:

    - ``mode='strict'``: each model tensor must be in the checkpoint with
      its shape (other checkpoint keys are ignored);
    - ``mode='finetune'`` (the runtime bases' setting): at least
      ``min_loaded_ratio`` of the model's tensors must load (``load_from``
      for fine-tuning: a new head of another size is fine); the rest is
      logged. A resume, and a checkpoint loaded by
      :class:`xcit_mm.Runner`'s ``val()`` or ``test()``, are checked as in
      ``'strict'``.

    Args:
        mode (str): ``'strict'`` or ``'finetune'``. Defaults to ``'strict'``.
        min_loaded_ratio (float): For ``'finetune'``. Defaults to 0.5.
        revise_keys (list[tuple[str, str]]): Renames applied before the
            comparison, as in ``Runner.load_checkpoint``. Defaults to
            stripping ``module.``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, mode: str = 'strict', min_loaded_ratio: float = 0.5,
                 revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.',
                                                            ''), )) -> None:
        if mode not in MODES:
            raise ValueError(f'CheckpointMatchHook mode must be one of '
                             f'{MODES}, got {mode!r}.')
        self.mode = mode
        self.min_loaded_ratio = min_loaded_ratio
        self.revise_keys = list(revise_keys)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model
        # the model that the checkpoint fills, unwrapped as mmengine's
        # loader does: DDP-like wrappers and test-time augmentation
        if is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        resuming = getattr(runner, 'resuming', None)
        if resuming is None:  # mmengine's Runner: what the config says
            resuming = bool(runner.cfg.get('resume', False))
        testing = getattr(runner, 'phase', None) in ('val', 'test')
        strict = self.mode == 'strict' or resuming or testing
        what = 'resume from' if resuming else (
            'evaluate' if strict else 'fine-tune from')

        def revise(sd: dict) -> Tuple[dict, None]:
            sd = {k: v for k, v in sd.items() if torch.is_tensor(v)}
            for p, r in self.revise_keys:
                sd = {re.sub(p, r, k): v for k, v in sd.items()}
            return sd, None

        # the entry mmengine's loader reads: ``state_dict``, else the whole
        # checkpoint (not the other wrappers that unwrap_checkpoint knows)
        try:
            _, report = load_checked(
                model,
                {'state_dict': checkpoint.get('state_dict', checkpoint)},
                key_map=revise, mode='cover' if strict else 'finetune',
                min_loaded_ratio=0. if strict else self.min_loaded_ratio,
                load=False,
                hint=f'There is nothing sound to {what}: it is probably a '
                'checkpoint of another model or architecture. Pass the '
                'checkpoint that this config trained, or convert official / '
                'timm XCiT weights with '
                'xcit_mm.models.backbones.xcit_convert.convert_checkpoint; '
                'to start a backbone from pretrained weights use '
                "model.backbone.init_cfg=dict(type='Pretrained', "
                "checkpoint=PATH, prefix='backbone.').")
        except CheckpointMismatchError as e:
            e.remedy = 'convert-xcit'
            raise
        if report['missing'] or report['mismatched']:
            runner.logger.warning(
                f'Checkpoint vs model: {describe_comparison(report)}.')
