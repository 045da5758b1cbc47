"""The reliability defaults that ``tools/train.py`` and ``tools/test.py``
apply to any config (each can be overridden in the config)."""
from typing import Any, List

CHECKPOINT_HOOKS = ('CheckpointHook', 'mmengine.CheckpointHook')


def _type_name(t: Any) -> str:
    return t if isinstance(t, str) else getattr(t, '__name__', str(t))


def _has_hook(cfg: Any, name: str) -> bool:
    return any(
        _type_name(h.get('type', '')).split('.')[-1] == name
        for h in (cfg.get('custom_hooks') or []) if isinstance(h, dict))


def apply_train_defaults(cfg: Any) -> List[str]:
    """Make a training config crash-safe; return what was changed.

    - ``train_cfg`` with ``by_epoch=True`` and no ``type`` runs
      :class:`~xcit_mm.engine.ResumableEpochBasedTrainLoop` (exact
      mid-epoch resume), with ``by_epoch=False``
      :class:`~xcit_mm.engine.ResumableIterBasedTrainLoop` (resume without
      replaying the data);
    - a ``CheckpointHook`` becomes :class:`~xcit_mm.engine.
      AtomicCheckpointHook` (same arguments; safe deletion order and
      pointer);
    - :class:`~xcit_mm.engine.NonFiniteLossHook` with ``action='stop'`` is
      added unless the config has one;
    - :class:`~xcit_mm.engine.CheckpointMatchHook` (``mode='finetune'``,
      strict on resume) is added unless the config has one.

    A config opts out by naming the type explicitly, e.g.
    ``train_cfg=dict(type='EpochBasedTrainLoop', ...)``.
    """
    changes = []
    train_cfg = cfg.get('train_cfg')
    if train_cfg and 'by_epoch' in train_cfg and 'type' not in train_cfg:
        loop = ('xcit_mm.ResumableEpochBasedTrainLoop' if train_cfg.pop(
            'by_epoch') else 'xcit_mm.ResumableIterBasedTrainLoop')
        train_cfg['type'] = loop
        changes.append(f'train loop: {loop}')
    hooks = list((cfg.get('default_hooks') or {}).values()) + list(
        cfg.get('custom_hooks') or [])
    for hook in hooks:
        if isinstance(hook, dict) and _type_name(hook.get('type')) in \
                CHECKPOINT_HOOKS:
            hook['type'] = 'xcit_mm.AtomicCheckpointHook'
            if 'checkpoint hook: xcit_mm.AtomicCheckpointHook' not in changes:
                changes.append('checkpoint hook: xcit_mm.AtomicCheckpointHook')
    custom = list(cfg.get('custom_hooks') or [])
    if not _has_hook(cfg, 'NonFiniteLossHook'):
        custom.append(dict(type='xcit_mm.NonFiniteLossHook', action='stop'))
        changes.append("xcit_mm.NonFiniteLossHook(action='stop')")
    if not _has_hook(cfg, 'CheckpointMatchHook'):
        custom.append(dict(type='xcit_mm.CheckpointMatchHook',
                           mode='finetune'))
        changes.append("xcit_mm.CheckpointMatchHook(mode='finetune')")
    cfg.custom_hooks = custom
    return changes


def apply_test_defaults(cfg: Any) -> List[str]:
    """Add a strict :class:`~xcit_mm.engine.CheckpointMatchHook`: testing
    a checkpoint that does not fill the model is an error."""
    if _has_hook(cfg, 'CheckpointMatchHook'):
        return []
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='xcit_mm.CheckpointMatchHook', mode='strict')
    ]
    return ["xcit_mm.CheckpointMatchHook(mode='strict')"]
