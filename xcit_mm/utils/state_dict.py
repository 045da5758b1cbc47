"""Pure functions on checkpoints and state dicts (no model is built here).

- :func:`unwrap_checkpoint`: the tensor dict inside a loaded checkpoint
  (mmengine ``state_dict``, official ``model`` / ``model_ema``, DDP
  ``module``, DINO ``teacher`` / ``student``);
- :func:`strip_prefix` and :func:`strip_common_prefixes`: key renaming;
- :func:`compare_state_dicts`: which of a model's tensors a checkpoint fills.
"""
import re
from typing import Dict, List, Optional, Sequence

import torch

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
