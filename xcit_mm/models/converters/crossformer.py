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
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from xcit_mm.models.backbones.crossformer import CrossFormer, resolve_arch
from xcit_mm.models.utils.crossformer_convert import (
    CLS_ONLY, _compare, check_buffers, detect_format, load_official,
    load_pretrained_backbone, read_arch, split_checkpoint)
from xcit_mm.utils.errors import CheckpointMismatchError


def infer_arch(backbone: Dict) -> Tuple[dict, Optional[str]]:
    """Read the arch off the weight shapes.

    Returns the arch dict and its zoo name (None when none matches). Group
    sizes and intervals hold no weights: a match takes the zoo's, otherwise
    CrossFormer++'s when ``ex_conv`` layers exist, else CrossFormer's.
    """
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


__all__ = [
    'convert_checkpoint', 'detect_format', 'infer_arch',
    'load_official', 'load_pretrained_backbone', 'split_checkpoint'
]
