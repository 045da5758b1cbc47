"""Pure functions on checkpoints and state dicts (no model is built here).

- :func:`unwrap_checkpoint`: the tensor dict inside a loaded checkpoint
  (mmengine ``state_dict``, official ``model`` / ``model_ema``, DDP
  ``module``, DINO ``teacher`` / ``student``);
- :func:`strip_prefix` and :func:`strip_common_prefixes`: key renaming;
- :func:`compare_state_dicts`: which of a model's tensors a checkpoint fills;
- :func:`load_checked`: the one path from a checkpoint file to a model's
  weights (read safely, unwrap, map keys, compare, raise or load), used by
  the backbones' ``init_cfg=dict(type='Pretrained')``, the converters and
  the converter tools.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .errors import CheckpointMismatchError, MissingFileError

#: Checkpoint entries that may wrap the weights, in order of preference.
WRAPPER_KEYS = ('state_dict', 'model', 'model_ema', 'module')
#: Model entries a checkpoint may lack without harm (BN counters).
OPTIONAL_KEYS = re.compile(r'(^|\.)num_batches_tracked$')


def unwrap_checkpoint(ckpt: dict, key: Optional[str] = None) -> Dict:
    """Return the tensor dict inside a loaded checkpoint.

    Args:
        ckpt (dict): What ``torch.load`` returned.
        key (str, optional): The entry to use (e.g. ``'model_ema'``, or
            ``'teacher'`` for a DINO training checkpoint: the official
            ``ckpt['teacher']``, or the ``teacher.*`` keys of an xcit_mm
            one's state dict). Defaults to the
            first of :data:`WRAPPER_KEYS` that holds a dict, else ``ckpt``.

    Raises:
        TypeError: ``ckpt`` is not a dict.
        KeyError: ``key`` is not in the checkpoint.
    """
    if not isinstance(ckpt, dict):
        raise TypeError(f'Expected a checkpoint dict, got {type(ckpt)}.')
    if key is not None:
        if key in ckpt:
            return ckpt[key]
        # a model saved by mmengine with the entry as a submodule, e.g. the
        # ``teacher.*`` keys of an xcit_mm DINO checkpoint
        inner = unwrap_checkpoint(ckpt)
        sub = {k[len(key) + 1:]: v for k, v in inner.items()
               if k.startswith(key + '.')}
        if sub:
            return sub
        raise KeyError(f'The checkpoint has no {key!r} entry; it has '
                       f'{sorted(ckpt)[:10]}.')
    for k in WRAPPER_KEYS:
        if isinstance(ckpt.get(k), dict):
            return ckpt[k]
    return ckpt


def strip_prefix(sd: Dict, prefix: str, keep_others: bool = True) -> Dict:
    """Remove ``prefix`` from the keys that start with it.

    Args:
        sd (dict): A state dict.
        prefix (str): e.g. ``'backbone.'``.
        keep_others (bool): Keep the keys without the prefix as they are
            (True) or drop them (False). Defaults to True.
    """
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v
            for k, v in sd.items() if keep_others or k.startswith(prefix)}


def strip_common_prefixes(
        sd: Dict, prefixes: Sequence[str] = ('module.', 'backbone.')) -> Dict:
    """Remove each of ``prefixes``, in order, when *every* key has it (a
    DDP ``module.`` wrapper, a backbone saved on its own)."""
    for prefix in prefixes:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = strip_prefix(sd, prefix)
    return sd


def compare_state_dicts(model_sd: Dict[str, torch.Tensor],
                        ckpt_sd: Dict[str, torch.Tensor]) -> Dict[str, List]:
    """Split a model's keys by what a checkpoint holds for them.

    Returns:
        dict: ``loaded`` (same key and shape), ``missing`` (absent, except
        the BN counters of :data:`OPTIONAL_KEYS`), ``mismatched`` (present
        with another shape, as ``'key: checkpoint (..) vs model (..)'``) and
        ``unexpected`` (checkpoint keys the model does not have).
    """
    loaded, missing, mismatched = [], [], []
    for k, v in model_sd.items():
        if k not in ckpt_sd:
            if not OPTIONAL_KEYS.search(k):
                missing.append(k)
        elif tuple(ckpt_sd[k].shape) != tuple(v.shape):
            mismatched.append(f'{k}: checkpoint {tuple(ckpt_sd[k].shape)} '
                              f'vs model {tuple(v.shape)}')
        else:
            loaded.append(k)
    unexpected = [k for k in ckpt_sd if k not in model_sd]
    return dict(loaded=loaded, missing=missing, mismatched=mismatched,
                unexpected=unexpected)


def describe_comparison(report: Dict[str, List]) -> str:
    """One sentence with the counts and examples of a
    :func:`compare_state_dicts` report."""
    n_model = sum(len(report[k]) for k in ('loaded', 'missing',
                                           'mismatched'))
    return (f"{len(report['loaded'])} of the model's {n_model} tensors load; "
            f"{len(report['missing'])} missing (e.g. "
            f"{report['missing'][:3]}), {len(report['mismatched'])} with "
            f"another shape (e.g. {report['mismatched'][:2]}), "
            f"{len(report['unexpected'])} unexpected (e.g. "
            f"{report['unexpected'][:3]})")


def _examples(keys: List[str], what: str, n: int = 4) -> str:
    return f'{len(keys)} {what} (e.g. {keys[:n]})'


def load_checked(
        target: Union[nn.Module, Dict[str, torch.Tensor]],
        checkpoint: Union[str, dict],
        *,
        key: Optional[str] = None,
        prefix: str = '',
        key_map: Optional[Callable[[Dict], Tuple[Dict, str]]] = None,
        skip: Optional[Callable[[str], bool]] = None,
        strict: bool = True,
        min_loaded_ratio: float = 0.,
        what: str = 'the model',
        hint: str = '',
        reader: Optional[Callable[[str], object]] = None,
        load: bool = True) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Read a checkpoint, map its keys, check them against a model, load.

    The steps, in order:

    1. read ``checkpoint`` when it is a path, with
       :func:`xcit_mm.runtime.checkpoint.safe_load` (or ``reader``); a
       missing file raises :class:`MissingFileError` ending with ``hint``;
    2. take the tensor dict inside it (:func:`unwrap_checkpoint` with
       ``key``) and, when some keys start with ``prefix``, keep only those,
       without the prefix;
    3. map the keys to the model's names with ``key_map`` (a model family's
       mapping of official / timm / DINO layouts), which returns the mapped
       dict and the name of the source layout;
    4. drop the keys the target lacks for which ``skip(key)`` is true (the
       classification-only weights when a dense backbone reads a
       classifier);
    5. compare with the target's state dict (:func:`compare_state_dicts`)
       and raise :class:`CheckpointMismatchError`, naming the missing,
       unexpected and mis-shaped keys, when a shape differs, when fewer than
       ``min_loaded_ratio`` of the target's tensors would load, or, with
       ``strict``, when any key is missing (BN counters included) or
       unexpected;
    6. load the matching tensors into ``target`` when it is a module and
       ``load`` is true.

    Args:
        target (nn.Module | dict): The model, or the state dict (tensors of
            the right shapes, e.g. on the ``meta`` device) to match.
        checkpoint (str | dict): A file name or a loaded checkpoint.
        key (str, optional): The checkpoint entry to read (e.g.
            ``'model_ema'``). Defaults to None (the usual wrappers).
        prefix (str): Read only the keys with this prefix (e.g.
            ``'backbone.'``), when there are any. Defaults to ``''``.
        key_map (callable, optional): ``state_dict -> (state_dict,
            source_format)``. Defaults to None (names kept).
        skip (callable, optional): ``key -> bool``: checkpoint keys that
            the target may lack. Defaults to None.
        strict (bool): Every key must match. Defaults to True.
        min_loaded_ratio (float): With ``strict=False``, the least share of
            the target's tensors that must load. Defaults to 0.
        what (str): The target in the error messages. Defaults to
            ``'the model'``.
        hint (str): What to do, appended to the error messages.
        reader (callable, optional): Reads a file name; defaults to
            :func:`~xcit_mm.runtime.checkpoint.safe_load`.
        load (bool): Load into a module target. Defaults to True.

    Returns:
        tuple: The tensors that load, in the target's order, and the
        :func:`compare_state_dicts` report plus ``skipped`` (the dropped
        keys of step 4) and ``source_format`` (from ``key_map``, else None).
    """
    source = 'The checkpoint'
    if isinstance(checkpoint, str):
        if reader is None:
            from xcit_mm.runtime.checkpoint import safe_load as reader
        source = repr(checkpoint)
        try:
            checkpoint = reader(checkpoint)
        except FileNotFoundError:
            raise MissingFileError(
                f'The checkpoint {source} for {what} does not exist. '
                f'{hint}') from None
    sd = unwrap_checkpoint(checkpoint, key)
    if prefix and any(k.startswith(prefix) for k in sd):
        sd = strip_prefix(sd, prefix, keep_others=False)
    fmt = None
    if key_map is not None:
        sd, fmt = key_map(sd)
    expected = target.state_dict() if isinstance(target, nn.Module) \
        else target
    skipped = [k for k in sd
               if skip is not None and k not in expected and skip(k)]
    sd = {k: v for k, v in sd.items() if k not in set(skipped)}
    report = compare_state_dicts(expected, sd)
    if strict:
        report['missing'] = [k for k in expected if k not in sd]
    report.update(skipped=skipped, source_format=fmt)
    loaded, missing, unexpected, mismatched = (
        report[k] for k in ('loaded', 'missing', 'unexpected', 'mismatched'))
    layout = f' ({fmt})' if fmt else ''
    if mismatched or (strict and (missing or unexpected)):
        raise CheckpointMismatchError(
            f'{source}{layout} does not fit {what}: '
            f"{_examples(missing, 'missing')}, "
            f"{_examples(unexpected, 'unexpected')}, "
            f"{_examples(mismatched, 'shape mismatches', 2)}. {hint}")
    if len(loaded) < min_loaded_ratio * len(expected):
        raise CheckpointMismatchError(
            f'{source}{layout} fills only {len(loaded)} of the '
            f'{len(expected)} tensors of {what}; missing e.g. {missing[:5]}, '
            f'unexpected e.g. {unexpected[:5]}. {hint}')
    state = OrderedDict((k, sd[k]) for k in loaded)
    if load and isinstance(target, nn.Module):
        target.load_state_dict(state, strict=strict)
    return state, report


def check_classifier(backbone_expected: Dict[str, torch.Tensor],
                     backbone: Dict[str, torch.Tensor],
                     head: Dict[str, torch.Tensor], *,
                     backbone_only: bool,
                     classification_only: 're.Pattern',
                     what: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Check converted classifier weights against a built backbone.

    Args:
        backbone_expected (dict): The state dict of the backbone the
            weights are for (tensors or ``meta`` tensors).
        backbone (dict): The converted backbone weights (bare keys).
        head (dict): The converted head weights (``fc.weight``,
            ``fc.bias``); the classifier is expected to have a linear head
            of as many classes as ``fc.weight`` has rows, over the
            channels of the backbone's last ``norm``.
        backbone_only (bool): Drop the head and the backbone keys that
            match ``classification_only`` (the backbone of a dense model).
        classification_only (re.Pattern): Backbone keys only a classifier
            has.
        what (str): The model, for the error message.

    Returns:
        tuple: ``{'backbone.*': ..., 'head.fc.*': ...}`` and the counts:
        ``converted``, ``backbone_tensors``, ``head_tensors``,
        ``num_classes`` (None without a head), ``missing`` and
        ``unexpected`` (both 0) and ``dropped_for_backbone_only``.

    Raises:
        CheckpointMismatchError: a key missing, unexpected or mis-shaped.
    """
    expected = OrderedDict(
        (f'backbone.{k}', v) for k, v in backbone_expected.items())
    if not backbone_only and 'fc.weight' in head:
        n, c = head['fc.weight'].shape[0], backbone_expected['norm.weight'
                                                              ].shape[0]
        expected['head.fc.weight'] = torch.empty(n, c, device='meta')
        expected['head.fc.bias'] = torch.empty(n, device='meta')
    mapped = OrderedDict((f'backbone.{k}', v) for k, v in backbone.items())
    mapped.update((f'head.{k}', v) for k, v in head.items())
    state_dict, report = load_checked(
        expected, {'state_dict': mapped},
        skip=lambda k: backbone_only and (k.startswith('head.') or bool(
            classification_only.match(k[len('backbone.'):]))),
        what=what)
    n_head = sum(k.startswith('head.') for k in state_dict)
    return state_dict, dict(
        converted=len(state_dict),
        backbone_tensors=len(state_dict) - n_head,
        head_tensors=n_head,
        num_classes=int(head['fc.weight'].shape[0]) if n_head else None,
        missing=0,
        unexpected=0,
        dropped_for_backbone_only=len(report['skipped']))
