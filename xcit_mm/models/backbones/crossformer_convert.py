"""CrossFormer checkpoints: the key mapping from the official layouts to
xcit_mm's, and the checked conversion that builds the model the weights are
for.

Layouts (the backbone keys of :class:`~xcit_mm.models.CrossFormer` are the
official ones, so a conversion mostly drops and renames):

- official classifier, ``crossformer`` branch: ``patch_embed.projs.k``,
  ``layers.i.blocks.j.*``, ``layers.i.downsample.*``, ``norm``, ``head``,
  plus the persistent buffers ``layers.i.blocks.j.attn.biases`` and
  ``attn.relative_position_index`` (checked against the values they must
  have, then dropped: xcit_mm computes them for each group shape);
- official classifier, ``main`` branch (CrossFormer++ too): the same without
  the buffers; CrossFormer++ adds ``ex_conv`` / ``ex_ln``. Both wrap the
  weights under ``model`` beside ``optimizer``, ``lr_scheduler``, ``epoch``
  and a yacs ``config``;
- official detection / segmentation checkpoints (mmdet 2.x / mmseg 0.x):
  ``state_dict`` with ``backbone.*`` (no final norm) and the 2.x neck and
  heads, of which only the backbone converts;
- xcit_mm: ``backbone.*`` and ``head.fc.*``.

:func:`to_crossformer_mm` is the mapping (a pure function on state dicts);
:func:`checkpoint_filter_fn` is the form the backbone's
``init_cfg=dict(type='Pretrained')`` uses; :func:`convert_checkpoint` checks
a whole conversion with :func:`xcit_mm.utils.state_dict.load_checked`.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

from xcit_mm.models.layers.crossformer_layers import (
    dpb_offsets,
    dpb_relative_index,
)
from xcit_mm.runtime.checkpoint import safe_load
from xcit_mm.utils.errors import CheckpointMismatchError
from xcit_mm.utils.state_dict import (
    check_classifier,
    strip_prefix,
    unwrap_checkpoint,
)

__all__ = [
    'CLS_ONLY', 'load_official', 'detect_format', 'check_buffers',
    'read_arch', 'to_crossformer_mm', 'checkpoint_filter_fn', 'infer_arch',
    'convert_checkpoint'
]

#: Official buffers that xcit_mm recomputes (checked, then dropped).
BUFFER = re.compile(r'\.attn\.(biases|relative_position_index|attn_mask)$')
#: What only the classifier has.
CLS_ONLY = re.compile(r'^(norm|head)\.')
#: Keys that tell an official mmdet 2.x / mmseg 0.x model.
DENSE_PARTS = ('neck.', 'rpn_head.', 'roi_head.', 'bbox_head.',
               'decode_head.', 'auxiliary_head.')


class _OfficialConfig:
    """Stands in for the yacs ``CfgNode`` that official files pickle under
    ``config``: it unpickles as a plain ``OrderedDict`` (which torch's
    weights-only reader fills in), so reading it runs no code."""

    def __new__(cls, *args) -> OrderedDict:
        return OrderedDict()


def load_official(filename: str):
    """:func:`~xcit_mm.runtime.checkpoint.safe_load` that also reads the yacs
    config of official classification files (as an inert dict)."""
    with torch.serialization.safe_globals([(_OfficialConfig,
                                            'yacs.config.CfgNode')]):
        return safe_load(filename)


def _strip(sd: Dict, prefix: str) -> Dict:
    return strip_prefix(sd, prefix, keep_others=False)


def detect_format(sd: Dict) -> str:
    """``'xcit_mm'``, ``'official_dense'``, ``'official'`` or
    ``'backbone'`` (bare backbone keys), from the keys of a state dict."""
    keys = list(sd)
    if not any('patch_embed.projs.' in k for k in keys):
        raise CheckpointMismatchError(
            'This is not a CrossFormer checkpoint: it has no '
            f'patch_embed.projs.* weights. First keys: {keys[:5]}.')
    if any(k.startswith('backbone.') for k in keys):
        if any(k.startswith(DENSE_PARTS) for k in keys):
            return 'official_dense'
        return 'xcit_mm'
    if any(k.startswith('head.') for k in keys):
        return 'official'
    return 'backbone'


def check_buffers(buffers: Dict) -> List[str]:
    """Check the official ``attn.biases`` / ``relative_position_index``
    buffers against the values DPB uses; return the keys."""
    bad = []
    for k, v in buffers.items():
        if k.endswith('attn_mask'):
            continue
        n = v.shape[0]
        if k.endswith('.biases'):
            G = (math.isqrt(n) + 1) // 2
            ok = v.shape == (n, 2) and torch.equal(
                v.float(), dpb_offsets(G, G))
        else:
            G = math.isqrt(n)
            ok = v.shape == (G * G, G * G) and torch.equal(
                v.long(), dpb_relative_index(G, G))
        if not ok:
            bad.append(k)
    if bad:
        raise CheckpointMismatchError(
            f'{len(bad)} official position buffers do not hold the offsets '
            f'of a G x G group (e.g. {bad[:3]}): the file is not an official '
            'CrossFormer checkpoint or it is corrupt.')
    return list(buffers)


def read_arch(backbone: Dict) -> dict:
    """The architecture that the weight shapes fix: ``embed_dims``,
    ``depths``, ``num_heads``, ``mlp_ratio`` and ``acl`` (CrossFormer++'s
    active-channel layers). Group sizes and intervals hold no weights."""
    try:
        embed_dims = backbone['patch_embed.norm.weight'].shape[0]
        depths = tuple(1 + max(
            int(m.group(1)) for k in backbone
            for m in [re.match(rf'layers\.{i}\.blocks\.(\d+)\.', k)] if m)
            for i in range(4))
        num_heads = tuple(
            backbone[f'layers.{i}.blocks.0.attn.pos.pos3.2.weight'].shape[0]
            for i in range(4))
        mlp_ratio = (backbone['layers.0.blocks.0.mlp.fc1.weight'].shape[0] /
                     embed_dims)
    except (KeyError, ValueError) as e:
        raise CheckpointMismatchError(
            f'Cannot read the CrossFormer arch off the checkpoint: {e!r} is '
            'missing (a truncated or non-CrossFormer file).') from None
    return dict(embed_dims=int(embed_dims), depths=depths,
                num_heads=tuple(int(h) for h in num_heads),
                mlp_ratio=float(mlp_ratio),
                acl=any('.ex_conv.' in k for k in backbone))


def to_crossformer_mm(ckpt: dict, key: Optional[str] = None):
    """Any supported checkpoint -> (backbone, head, buffers, format).

    ``backbone`` keys are bare (``layers.0...``), ``head`` uses mmpretrain's
    ``fc.*`` names. ``buffers`` lists the official position buffers, which
    are checked (:func:`check_buffers`) and dropped.
    """
    sd = unwrap_checkpoint(ckpt, key)
    if sd and all(k.startswith('module.') for k in sd):
        sd = _strip(sd, 'module.')
    fmt = detect_format(sd)
    if fmt in ('xcit_mm', 'official_dense'):
        backbone = _strip(sd, 'backbone.')
        head = _strip(sd, 'head.fc.') if fmt == 'xcit_mm' else {}
        head = {f'fc.{k}': v for k, v in head.items()}
    else:
        backbone = {k: v for k, v in sd.items() if not k.startswith('head.')}
        head = {'fc.' + k[5:]: v for k, v in sd.items()
                if k.startswith('head.')}
    buffers = {k: v for k, v in backbone.items() if BUFFER.search(k)}
    check_buffers(buffers)
    backbone = {k: v for k, v in backbone.items() if k not in buffers}
    return backbone, head, list(buffers), fmt


def checkpoint_filter_fn(state_dict: Dict) -> Tuple[Dict, str]:
    """Any supported CrossFormer state dict -> (the backbone's keys, with
    the classifier head as ``head.fc.*``, source format): the key mapping of
    :meth:`CrossFormer.load_pretrained
    <xcit_mm.models.CrossFormer.load_pretrained>`."""
    backbone, head, _, fmt = to_crossformer_mm({'state_dict': state_dict})
    backbone.update((f'head.{k}', v) for k, v in head.items())
    return backbone, fmt


def infer_arch(backbone: Dict) -> Tuple[dict, Optional[str]]:
    """Read the arch off the weight shapes.

    Returns the arch dict and its zoo name (None when none matches). Group
    sizes and intervals hold no weights: a match takes the zoo's, otherwise
    CrossFormer++'s when ``ex_conv`` layers exist, else CrossFormer's.
    """
    from .crossformer import CrossFormer, resolve_arch  # (imports this one)
    arch = read_arch(backbone)
    acl = arch['acl']
    for name in CrossFormer.arch_zoo:
        zoo = resolve_arch(name)
        if all(zoo[k] == v for k, v in arch.items()):
            return zoo, name
    defaults = resolve_arch('pp-small' if acl else 'small')
    arch.update(group_size=defaults['group_size'],
                interval=defaults['interval'])
    return resolve_arch(arch), None


def convert_checkpoint(ckpt: dict, backbone_only: bool = False,
                       key: Optional[str] = None) -> Tuple[Dict, dict]:
    """Convert a loaded checkpoint into an xcit_mm state dict, checked.

    The arch is read off the weight shapes, a CrossFormer of that arch is
    built (on the ``meta`` device) and every key must match it exactly.

    Args:
        ckpt (dict): A loaded official classification (either branch),
            official detection / segmentation, or xcit_mm checkpoint.
        backbone_only (bool): Keep what a dense backbone has (no final norm
            or head). Official det / seg files convert only this way.
        key (str, optional): Wrapper entry to read (e.g. ``'model_ema'``).

    Returns:
        tuple: ``{'backbone.*': ..., 'head.fc.*': ...}`` and a report dict
        (source format, arch, counts).

    Raises:
        CheckpointMismatchError: keys missing, unexpected or misshapen.
    """
    from .crossformer import CrossFormer  # (crossformer.py imports this one)
    backbone, head, buffers, fmt = to_crossformer_mm(ckpt, key)
    arch, name = infer_arch(backbone)
    dense = backbone_only or fmt == 'official_dense'
    with torch.device('meta'):
        model = CrossFormer(arch, out_indices=(0, 1, 2, 3) if dense else 3,
                            final_norm=not dense)
    state_dict, counts = check_classifier(
        model.state_dict(), backbone, head, backbone_only=dense,
        classification_only=CLS_ONLY,
        what=f'a CrossFormer {name or arch} (read as {fmt})')
    report = dict(
        source_format=fmt,
        arch=name or {k: arch[k] for k in ('embed_dims', 'depths',
                                          'num_heads', 'mlp_ratio', 'acl')},
        buffers_checked_and_dropped=len(buffers), **counts)
    return state_dict, report
