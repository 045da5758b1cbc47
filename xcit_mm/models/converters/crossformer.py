"""Checked conversion of official CrossFormer / CrossFormer++ weights.

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
"""
import math
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import MMLogger

from xcit_mm.models.backbones.crossformer import (CrossFormer,
                                                  DynamicPosBias,
                                                  resolve_arch)
from xcit_mm.utils.checkpoint import safe_load
from xcit_mm.utils.errors import CheckpointMismatchError
from xcit_mm.utils.state_dict import (compare_state_dicts, strip_prefix,
                                      unwrap_checkpoint)

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
    """:func:`~xcit_mm.utils.checkpoint.safe_load` that also reads the yacs
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
                v.float(), DynamicPosBias.offsets(G, G))
        else:
            G = math.isqrt(n)
            ok = v.shape == (G * G, G * G) and torch.equal(
                v.long(), DynamicPosBias.relative_index(G, G))
        if not ok:
            bad.append(k)
    if bad:
        raise CheckpointMismatchError(
            f'{len(bad)} official position buffers do not hold the offsets '
            f'of a G x G group (e.g. {bad[:3]}): the file is not an official '
            'CrossFormer checkpoint or it is corrupt.')
    return list(buffers)


def infer_arch(backbone: Dict) -> Tuple[dict, Optional[str]]:
    """Read the arch off the weight shapes.

    Returns the arch dict and its zoo name (None when none matches). Group
    sizes and intervals hold no weights: a match takes the zoo's, otherwise
    CrossFormer++'s when ``ex_conv`` layers exist, else CrossFormer's.
    """
    try:
        embed_dims = backbone['patch_embed.norm.weight'].shape[0]
        depths = tuple(1 + max(
            int(m.group(1)) for k in backbone
            for m in [re.match(rf'layers\.{i}\.blocks\.(\d+)\.', k)] if m)
            for i in range(4))
        num_heads = tuple(
            backbone[f'layers.{i}.blocks.0.attn.pos.pos3.2.weight'].shape[0]
            for i in range(4))
    except (KeyError, ValueError) as e:
        raise CheckpointMismatchError(
            f'Cannot read the CrossFormer arch off the checkpoint: {e!r} is '
            'missing (a truncated or non-CrossFormer file).') from None
    acl = any('.ex_conv.' in k for k in backbone)
    arch = dict(embed_dims=int(embed_dims), depths=depths,
                num_heads=tuple(int(h) for h in num_heads), acl=acl)
    for name in CrossFormer.arch_zoo:
        zoo = resolve_arch(name)
        if all(zoo[k] == v for k, v in arch.items()):
            return zoo, name
    defaults = resolve_arch('pp-small' if acl else 'small')
    arch.update(group_size=defaults['group_size'],
                interval=defaults['interval'])
    return resolve_arch(arch), None


def split_checkpoint(ckpt: dict, key: Optional[str] = None):
    """Any supported checkpoint -> (backbone, head, buffers, format).

    ``backbone`` keys are bare (``layers.0...``), ``head`` uses mmpretrain's
    ``fc.*`` names.
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
    backbone = {k: v for k, v in backbone.items() if k not in buffers}
    return backbone, head, buffers, fmt


def _compare(expected: Dict, got: Dict) -> Tuple[List, List, List]:
    r = compare_state_dicts(expected, got)
    return r['missing'], r['unexpected'], r['mismatched']


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
    backbone, head, buffers, fmt = split_checkpoint(ckpt, key)
    check_buffers(buffers)
    arch, name = infer_arch(backbone)
    dense = backbone_only or fmt == 'official_dense'
    with torch.device('meta'):
        model = CrossFormer(arch, out_indices=(0, 1, 2, 3) if dense else 3,
                            final_norm=not dense)
    expected = model.state_dict()
    dropped = []
    if dense:
        dropped = [k for k in backbone if CLS_ONLY.match(k)]
        backbone = {k: v for k, v in backbone.items() if k not in dropped}
        dropped += [f'head.{k}' for k in head]
        head = {}
    missing, unexpected, bad_shape = _compare(expected, backbone)
    if head and (set(head) != {'fc.weight', 'fc.bias'} or
                 head['fc.weight'].shape[1] != model.stage_channels[-1]):
        unexpected += [f'head.{k}' for k in head]
    if missing or unexpected or bad_shape:
        raise CheckpointMismatchError(
            f'The checkpoint ({fmt}) does not convert to a CrossFormer '
            f'{name or arch}: {len(missing)} missing (e.g. {missing[:4]}), '
            f'{len(unexpected)} unexpected (e.g. {unexpected[:4]}), '
            f'{len(bad_shape)} with the wrong shape (e.g. {bad_shape[:4]}).')
    state_dict = OrderedDict((f'backbone.{k}', v) for k, v in backbone.items())
    state_dict.update((f'head.{k}', v) for k, v in head.items())
    report = dict(
        source_format=fmt,
        arch=name or {k: arch[k] for k in ('embed_dims', 'depths',
                                          'num_heads', 'acl')},
        converted=len(state_dict),
        backbone_tensors=len(backbone),
        head_tensors=len(head),
        num_classes=int(head['fc.weight'].shape[0]) if head else None,
        buffers_checked_and_dropped=len(buffers),
        dropped_for_backbone_only=len(dropped),
        missing=0,
        unexpected=0)
    return state_dict, report


def load_pretrained_backbone(model: CrossFormer, filename: str,
                             prefix: str = '') -> dict:
    """Load an xcit_mm or official checkpoint into ``model``, strictly.

    Official buffers are checked and dropped, the final norm and head are
    skipped when ``model`` has none (a dense backbone fed by a classifier);
    every other difference raises :class:`CheckpointMismatchError`. Logs
    and returns the counts.
    """
    ckpt = load_official(filename)
    sd = unwrap_checkpoint(ckpt)
    if prefix and any(k.startswith(prefix) for k in sd):
        sd = _strip(sd, prefix)
    backbone, head, buffers, fmt = split_checkpoint({'state_dict': sd})
    check_buffers(buffers)
    own = model.state_dict()
    skipped = [k for k in backbone if CLS_ONLY.match(k) and k not in own]
    backbone = {k: v for k, v in backbone.items() if k not in skipped}
    missing, unexpected, bad_shape = _compare(own, backbone)
    if missing or unexpected or bad_shape:
        raise CheckpointMismatchError(
            f'{filename!r} ({fmt}, prefix {prefix!r}) does not fit this '
            f'CrossFormer (arch {infer_arch(backbone)[1] or "custom"} in the '
            f'file): {len(missing)} missing (e.g. {missing[:4]}), '
            f'{len(unexpected)} unexpected (e.g. {unexpected[:4]}), '
            f'{len(bad_shape)} with the wrong shape (e.g. {bad_shape[:3]}). '
            'Check the arch and init_cfg.prefix, or convert the file with '
            'tools/model_converters/crossformer2mm.py.')
    model.load_state_dict(backbone, strict=True)
    counts = dict(format=fmt, loaded=len(backbone), missing=0, unexpected=0,
                  skipped_classification_only=len(skipped) + len(head),
                  buffers_checked_and_dropped=len(buffers))
    MMLogger.get_current_instance().info(
        f'Loaded pretrained CrossFormer from {filename}: ' +
        ', '.join(f'{k}={v}' for k, v in counts.items()))
    return counts


__all__ = [
    'convert_checkpoint', 'detect_format', 'infer_arch',
    'load_official', 'load_pretrained_backbone', 'split_checkpoint'
]
