"""The reliability defaults that ``tools/train.py`` and ``tools/test.py``
apply to any config (each can be overridden in the config)."""
from typing import Any, List

CHECKPOINT_HOOKS = ('CheckpointHook', 'mmengine.CheckpointHook')
#: mmcv's image loader (what mmpretrain, mmdet and mmseg register).
PLAIN_IMAGE_LOADERS = ('LoadImageFromFile', 'mmcv.LoadImageFromFile',
                       'mmpretrain.LoadImageFromFile',
                       'mmdet.LoadImageFromFile', 'mmseg.LoadImageFromFile')


def _type_name(t: Any) -> str:
    return t if isinstance(t, str) else getattr(t, '__name__', str(t))


def _has_hook(cfg: Any, name: str) -> bool:
    return any(
        _type_name(h.get('type', '')).split('.')[-1] == name
        for h in (cfg.get('custom_hooks') or []) if isinstance(h, dict))


def name_bad_images(cfg: Any) -> List[str]:
    """Load images with :class:`xcit_mm.LoadImageFromFile` (same arguments,
    ``on_error='raise'``), which names an empty or undecodable file in one
    paragraph, where mmcv's loader raises a bare ``cv2.error`` or
    ``AssertionError``. Every ``LoadImageFromFile`` of mmcv (the one that
    mmpretrain, mmdet and mmseg register) in a data loader's or the TTA
    pipeline is replaced; returns what was changed."""
    found = []

    def visit(obj: Any) -> None:
        if isinstance(obj, dict):
            if _type_name(obj.get('type', '')) in PLAIN_IMAGE_LOADERS:
                obj['type'] = 'xcit_mm.LoadImageFromFile'
                found.append(obj)
            for value in obj.values():
                visit(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                visit(value)

    for key in list(cfg.keys()):
        if key.endswith('dataloader') or key == 'tta_pipeline':
            visit(cfg.get(key))
    return (['image loading: xcit_mm.LoadImageFromFile (names a bad file)']
            if found else [])


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

    - mmcv's ``LoadImageFromFile`` becomes
      :class:`xcit_mm.LoadImageFromFile` (:func:`name_bad_images`).

    A config opts out by naming the type explicitly, e.g.
    ``train_cfg=dict(type='EpochBasedTrainLoop', ...)``.
    """
    changes = name_bad_images(cfg)
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
    """Add a strict :class:`~xcit_mm.engine.CheckpointMatchHook` (testing
    a checkpoint that does not fill the model is an error) and load images
    with :class:`xcit_mm.LoadImageFromFile` (:func:`name_bad_images`)."""
    changes = name_bad_images(cfg)
    if _has_hook(cfg, 'CheckpointMatchHook'):
        return changes
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='xcit_mm.CheckpointMatchHook', mode='strict')
    ]
    return changes + ["xcit_mm.CheckpointMatchHook(mode='strict')"]
