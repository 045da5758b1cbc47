"""Pure functions on checkpoints and state dicts (no model is built here).

- :func:`unwrap_checkpoint`: the tensor dict inside a loaded checkpoint
  (mmengine ``state_dict``, official ``model`` / ``model_ema``, DDP
  ``module``, DINO ``teacher`` / ``student``); :func:`dino_network` and
  :func:`dino_network_state`: which network of a DINO training checkpoint
  to read (the teacher by default) and its tensors, :func:`dino_choice`:
  that choice in words;
- :func:`strip_prefix` and :func:`strip_common_prefixes`: key renaming;
- :func:`compare_state_dicts`: which of a model's tensors a checkpoint fills;
- :func:`check_fit`, :func:`describe_comparison` and
  :func:`mismatch_error`: whether a checkpoint fits a model by one of four
  rules, in words, and the error when it does not;
- :func:`load_checked`: the one path from a checkpoint file to a model's
  weights (read safely, unwrap, map keys, check, raise or load), used by
  the backbones' ``init_cfg=dict(type='Pretrained')``, the converters, the
  distillation teacher, the analysis tools and ``CheckpointMatchHook``.
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


#: The two networks of a DINO training checkpoint, the default first: the
#: teacher is what DINO evaluates (k-NN, linear probe) and releases.
DINO_NETWORKS = ('teacher', 'student')


def dino_network(ckpt: dict, key: Optional[str] = None) -> Optional[str]:
    """Which network of a DINO training checkpoint to read, or None when
    ``ckpt`` is not one (or ``key`` names another entry).

    A DINO training checkpoint is an official one (``student`` and
    ``teacher`` entries) or one of an xcit_mm DINO run (``teacher.*`` keys
    beside the student's ``backbone.*`` / ``head.*`` in its state dict).

    Args:
        ckpt (dict): A loaded checkpoint.
        key (str, optional): ``'teacher'`` or ``'student'``; None means the
            teacher (:data:`DINO_NETWORKS`).
    """
    if not isinstance(ckpt, dict) or key not in (None, *DINO_NETWORKS):
        return None
    if not all(isinstance(ckpt.get(k), dict) for k in DINO_NETWORKS):
        inner = unwrap_checkpoint(ckpt)
        if not any(k.startswith('teacher.backbone.') for k in inner):
            return None
    return key or DINO_NETWORKS[0]


def dino_network_state(ckpt: dict, network: str) -> Dict:
    """The ``backbone.*`` / ``head.*`` tensors of one network of a DINO
    training checkpoint (see :func:`dino_network`), names as saved (an
    official file's keep their DDP ``module.`` prefix)."""
    if isinstance(ckpt.get(network), dict):  # official
        return ckpt[network]
    inner = unwrap_checkpoint(ckpt)
    if network == 'teacher':
        return strip_prefix(inner, 'teacher.', keep_others=False)
    return {k: v for k, v in inner.items()
            if k.startswith(('backbone.', 'head.'))}


def dino_choice(source_format: str, option: str) -> str:
    """The sentence a tool prints after reading a DINO training checkpoint
    (a ``source_format`` such as ``'xcit_mm DINO teacher'``), naming the
    ``option`` that picks the other network; ``''`` for other formats."""
    network = source_format.rpartition(' DINO ')[2]
    if ' DINO ' not in source_format or network not in DINO_NETWORKS:
        return ''
    other = DINO_NETWORKS[1 - DINO_NETWORKS.index(network)]
    return (f'DINO training checkpoint: read the {network} backbone '
            f'({option} {other} for the {other}); DINO\'s projection head '
            'is not part of it.')


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


#: How much of a model a checkpoint must fill, by :func:`check_fit` mode.
FIT_RULES = {
    'exact': 'Every tensor of the model must load with its shape and the '
    'checkpoint may hold nothing else',
    'cover': 'Every tensor of the model must load with its shape',
    'partial': 'No tensor may have another shape, and at least {ratio} of '
    "the model's tensors must load",
    'finetune': "At least {ratio} of the model's tensors must load",
}


def check_fit(model_sd: Dict[str, torch.Tensor],
              ckpt_sd: Dict[str, torch.Tensor],
              mode: str = 'exact',
              min_loaded_ratio: float = 0.) -> Dict:
    """Compare a checkpoint with a model and decide whether it fits.

    The keys are split as in :func:`compare_state_dicts` (BN counters are
    never required); ``mode`` says which of the splits may be non-empty:

    - ``'exact'``: no key missing, of another shape or unexpected (a model's
      own checkpoint, a conversion, a distillation teacher);
    - ``'cover'``: no key missing or of another shape; other checkpoint keys
      are ignored (evaluating or resuming, where the file may hold more);
    - ``'partial'``: no key of another shape, and at least
      ``min_loaded_ratio`` of the model's tensors load (pretrained weights
      for a part of the model);
    - ``'finetune'``: at least ``min_loaded_ratio`` of the model's tensors
      load; tensors of another shape keep their initial values, as missing
      ones do (a classifier fine-tuned with a head of another size).

    Args:
        model_sd (dict): The model's state dict (tensors, or ``meta``
            tensors of the right shapes).
        ckpt_sd (dict): The checkpoint's tensors, with the model's names.
        mode (str): One of :data:`FIT_RULES`. Defaults to ``'exact'``.
        min_loaded_ratio (float): The least share of the model's tensors
            that must load, in any mode. Defaults to 0.

    Returns:
        dict: The :func:`compare_state_dicts` report plus ``total`` (the
        model tensors that count: all but the absent BN counters), ``rule``
        (the mode's rule in words) and ``fits`` (bool).

    Raises:
        ValueError: an unknown ``mode``.
    """
    if mode not in FIT_RULES:
        raise ValueError(f'mode must be one of {tuple(FIT_RULES)}, got '
                         f'{mode!r}.')
    report = compare_state_dicts(model_sd, ckpt_sd)
    total = sum(len(report[k]) for k in ('loaded', 'missing', 'mismatched'))
    enough = len(report['loaded']) >= min_loaded_ratio * total
    fits = {
        'exact': not (report['missing'] or report['mismatched']
                      or report['unexpected']),
        'cover': not (report['missing'] or report['mismatched']),
        'partial': not report['mismatched'],
        'finetune': True,
    }[mode] and enough
    report.update(total=total, fits=fits, rule=FIT_RULES[mode].format(
        ratio=f'{min_loaded_ratio:.0%}'))
    return report


def describe_comparison(report: Dict) -> str:
    """The counts and examples of a :func:`compare_state_dicts` or
    :func:`check_fit` report, in one clause: ``'3 of 6 tensors load; 2
    missing (e.g. [...]), 1 with another shape (e.g. ['k: checkpoint (..)
    vs model (..)']), 0 unexpected'``."""
    total = sum(len(report[k]) for k in ('loaded', 'missing', 'mismatched'))

    def part(kind: str, label: str, n: int) -> str:
        keys = report[kind]
        return f'{len(keys)} {label}' + (f' (e.g. {keys[:n]})' if keys
                                         else '')

    return (f"{len(report['loaded'])} of {total} tensors load; "
            f"{part('missing', 'missing', 4)}, "
            f"{part('mismatched', 'with another shape', 2)}, "
            f"{part('unexpected', 'unexpected', 4)}")


def mismatch_error(report: Dict, source: str = 'The checkpoint',
                   what: str = 'the model',
                   hint: str = '') -> CheckpointMismatchError:
    """The error for a :func:`check_fit` report that does not fit: the
    counts and examples, the rule that failed, and ``hint`` (what to do).

    Args:
        report (dict): From :func:`check_fit`.
        source (str): The checkpoint, as the message names it.
        what (str): The model, as the message names it.
        hint (str): Appended to the message.
    """
    return CheckpointMismatchError(
        f'{source} does not fit {what}: {describe_comparison(report)}. '
        f"{report['rule']}. {hint}".strip())


def _read_checkpoint(filename: str) -> object:
    """A local file with :func:`~xcit_mm.runtime.checkpoint.safe_load`, an
    ``http(s)://`` URL (or another of mmengine's schemes) with mmengine's
    loader inside :func:`~xcit_mm.runtime.checkpoint.safe_loading`."""
    from xcit_mm.runtime.checkpoint import safe_load, safe_loading
    if '://' not in filename:
        return safe_load(filename)
    from mmengine.runner.checkpoint import CheckpointLoader
    with safe_loading():
        return CheckpointLoader.load_checkpoint(filename, map_location='cpu')


def load_checked(
        target: Union[nn.Module, Dict[str, torch.Tensor]],
        checkpoint: Union[str, dict],
        *,
        key: Optional[str] = None,
        prefix: str = '',
        key_map: Optional[Callable[[Dict], Tuple[Dict, str]]] = None,
        skip: Optional[Callable[[str], bool]] = None,
        mode: str = 'exact',
        min_loaded_ratio: float = 0.,
        what: str = 'the model',
        hint: str = '',
        source: Optional[str] = None,
        reader: Optional[Callable[[str], object]] = None,
        load: bool = True) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Read a checkpoint, map its keys, check them against a model, load.

    The one path from a checkpoint to a model's weights in xcit_mm: the
    backbones' ``init_cfg=dict(type='Pretrained')``, the converters, the
    distillation teacher, the analysis tools, and the check that
    :class:`~xcit_mm.runtime.CheckpointMatchHook` runs before mmengine
    loads (``load=False``). The steps, in order:

    1. read ``checkpoint`` when it is a path, with
       :func:`xcit_mm.runtime.checkpoint.safe_load` (``http(s)://`` URLs
       through mmengine's loader with the same allow-list), or with
       ``reader``; a missing file raises :class:`MissingFileError` ending
       with ``hint``;
    2. take the tensor dict inside it (:func:`unwrap_checkpoint` with
       ``key``) and, when some keys start with ``prefix``, keep only those,
       without the prefix;
    3. map the keys to the model's names with ``key_map`` (a model family's
       mapping of official / timm / DINO layouts), which returns the mapped
       dict and the name of the source layout;
    4. drop the keys the target lacks for which ``skip(key)`` is true (the
       classification-only weights when a dense backbone reads a
       classifier);
    5. check the fit with the target's state dict (:func:`check_fit` with
       ``mode`` and ``min_loaded_ratio``) and, when it does not fit, raise
       :class:`CheckpointMismatchError` naming the missing, unexpected and
       mis-shaped keys and the rule that failed (:func:`mismatch_error`);
    6. load the tensors that fit into ``target`` when it is a module and
       ``load`` is true.

    Args:
        target (nn.Module | dict): The model, or the state dict (tensors of
            the right shapes, e.g. on the ``meta`` device) to match.
        checkpoint (str | dict): A file name or URL, or a loaded
            checkpoint.
        key (str, optional): The checkpoint entry to read (e.g.
            ``'model_ema'``). Defaults to None (the usual wrappers).
        prefix (str): Read only the keys with this prefix (e.g.
            ``'backbone.'``), when there are any. Defaults to ``''``.
        key_map (callable, optional): ``state_dict -> (state_dict,
            source_format)``. Defaults to None (names kept).
        skip (callable, optional): ``key -> bool``: checkpoint keys that
            the target may lack. Defaults to None.
        mode (str): How much must fit (see :func:`check_fit`):
            ``'exact'``, ``'cover'``, ``'partial'`` or ``'finetune'``.
            Defaults to ``'exact'``.
        min_loaded_ratio (float): The least share of the target's tensors
            that must load. Defaults to 0.
        what (str): The target in the error messages. Defaults to
            ``'the model'``.
        hint (str): What to do, appended to the error messages.
        source (str, optional): The checkpoint in the error messages.
            Defaults to the file name, or ``'The checkpoint'``.
        reader (callable, optional): Reads a file name instead of step 1's
            default.
        load (bool): Load into a module target. Defaults to True.

    Returns:
        tuple: The tensors that load, in the target's order, and the
        :func:`check_fit` report plus ``skipped`` (the dropped keys of
        step 4) and ``source_format`` (from ``key_map``, else None).
    """
    if isinstance(checkpoint, str):
        source = source or repr(checkpoint)
        try:
            checkpoint = (reader or _read_checkpoint)(checkpoint)
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
    report = check_fit(expected, sd, mode, min_loaded_ratio)
    report.update(skipped=skipped, source_format=fmt)
    if not report['fits']:
        layout = f' ({fmt})' if fmt else ''
        raise mismatch_error(report, f"{source or 'The checkpoint'}{layout}",
                             what, hint)
    state = OrderedDict((k, sd[k]) for k in report['loaded'])
    if load and isinstance(target, nn.Module):
        # the check above is the strict one: what is left out here are BN
        # counters and, by ``mode``, keys allowed to be absent
        target.load_state_dict(state, strict=False)
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
