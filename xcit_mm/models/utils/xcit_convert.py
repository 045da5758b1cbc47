"""XCiT key layouts: map official, timm and DINO weights to xcit_mm's, and
load them into a backbone.

Layouts (backbone keys; see ``shared/notes/xcit-reference.md``):

- official: ``pos_embeder.*``, fused ``cls_attn_blocks.j.attn.qkv``,
  ``head.*``; files wrap the weights in ``model`` / ``model_ema``;
- timm: ``pos_embed.*``, class attention split into ``attn.q/k/v``;
- DINO (official self-supervised): the official layout without ``head``;
- xcit_mm: ``pos_embed.*``, fused ``qkv``; classifiers prefix ``backbone.``
  and name the head ``head.fc``.

These are pure functions on state dicts: nothing here builds a model. The
checked conversion that builds an XCiT lives in
:mod:`xcit_mm.models.converters.xcit`.
"""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
from mmengine.logging import MMLogger

from xcit_mm.runtime.checkpoint import safe_load
from xcit_mm.utils.errors import CheckpointMismatchError, MissingFileError
from xcit_mm.utils.state_dict import (compare_state_dicts,
                                      strip_common_prefixes, strip_prefix,
                                      unwrap_checkpoint)

#: Keys that exist only in classification mode (not in a dense backbone).
CLS_ONLY = re.compile(r'^(cls_token|cls_attn_blocks\.|norm\.|head\.)')

def detect_format(sd: Dict) -> str:
    """``'xcit_mm'`` (classifier), ``'official'``, ``'timm'`` or
    ``'xcit_mm_backbone'``."""
    keys = list(sd)
    if any(k.startswith('backbone.') for k in keys):
        return 'xcit_mm'
    if any(k.startswith('pos_embeder.') for k in keys):
        return 'official'
    if any(re.match(r'cls_attn_blocks\.\d+\.attn\.q\.', k) for k in keys):
        return 'timm'
    if any(k.startswith('pos_embed.token_projection') for k in keys):
        # no head-free way to tell timm from xcit_mm without class attention
        return 'xcit_mm_backbone'
    raise CheckpointMismatchError(
        'This is not an XCiT checkpoint: none of the XCiT keys '
        '(pos_embeder.*, pos_embed.token_projection.*, backbone.*) is '
        f'present. First keys: {keys[:5]}')


def foreign_to_backbone(sd: Dict) -> Tuple[Dict, Dict]:
    """Official / timm / DINO weights -> (backbone dict, head dict).

    The head dict uses mmpretrain's ``fc.weight`` / ``fc.bias`` names.
    """
    backbone, head = OrderedDict(), OrderedDict()
    split_qkv = {}
    for k, v in sd.items():
        if k.startswith('head.'):
            head['fc.' + k[len('head.'):]] = v
            continue
        k = k.replace('pos_embeder.', 'pos_embed.', 1)
        m = re.match(r'(cls_attn_blocks\.\d+\.attn\.)([qkv])\.(weight|bias)$',
                     k)
        if m:  # timm splits class-attention qkv: fuse it back
            split_qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = v
            continue
        backbone[k] = v
    for (prefix, kind), parts in split_qkv.items():
        if set(parts) != {'q', 'k', 'v'}:
            raise KeyError(f'{prefix}{{q,k,v}}.{kind}: found only '
                           f'{sorted(parts)}; the checkpoint is incomplete.')
        backbone[f'{prefix}qkv.{kind}'] = torch.cat(
            [parts['q'], parts['k'], parts['v']], dim=0)
    return backbone, head


def to_xcit_mm(ckpt: dict, key: Optional[str] = None) -> Tuple[Dict, Dict,
                                                                str]:
    """Any supported checkpoint -> (backbone dict, head dict, source format).

    Both dicts are unprefixed (``blocks.0...``, ``fc.weight``). A model
    saved with a ``backbone.`` prefix whose backbone keys are in the
    official or timm layout (a DINO training checkpoint's ``teacher``) is
    converted too.

    Args:
        ckpt (dict): A loaded checkpoint.
        key (str, optional): The entry of ``ckpt`` to read (see
            :func:`~xcit_mm.utils.state_dict.unwrap_checkpoint`).
    """
    sd = strip_common_prefixes(unwrap_checkpoint(ckpt, key))
    fmt = detect_format(sd)
    if fmt == 'xcit_mm':
        backbone = strip_prefix(sd, 'backbone.', keep_others=False)
        head = strip_prefix(sd, 'head.', keep_others=False)
        if detect_format(backbone) in ('official', 'timm'):
            backbone, _ = foreign_to_backbone(backbone)
            fmt = 'official'
        return backbone, head, fmt
    if fmt == 'xcit_mm_backbone':
        return dict(sd), {}, fmt
    backbone, head = foreign_to_backbone(sd)
    return backbone, head, fmt


def infer_arch(backbone: Dict) -> dict:
    """Read the architecture off the weight shapes.

    Returns ``dict(arch=dict(embed_dims, depth, num_heads), patch_size)``.
    ``tokens_norm`` and ``eta`` hold no weights and cannot be inferred.
    """
    try:
        embed_dims = backbone['pos_embed.token_projection.weight'].shape[0]
        num_heads = backbone['blocks.0.attn.temperature'].shape[0]
    except KeyError as e:
        raise CheckpointMismatchError(
            f'Cannot infer the XCiT arch: {e} is missing.') from None
    depth = 1 + max(
        int(m.group(1)) for k in backbone
        for m in [re.match(r'blocks\.(\d+)\.', k)] if m)
    patch_size = 16 if 'patch_embed.proj.6.0.weight' in backbone else 8
    return dict(
        arch=dict(embed_dims=int(embed_dims), depth=depth,
                  num_heads=int(num_heads)),
        patch_size=patch_size)


def load_pretrained_backbone(model: torch.nn.Module, filename: str,
                             prefix: str = '',
                             min_loaded_ratio: float = 0.5) -> dict:
    """Load an xcit_mm / official / timm / DINO checkpoint into an XCiT.

    Shape mismatches raise; so does a checkpoint that fills fewer than
    ``min_loaded_ratio`` of the backbone's tensors (the official dense code
    silently loaded nothing in that case). Logs and returns the counts.
    """
    logger = MMLogger.get_current_instance()
    try:
        ckpt = safe_load(filename)
    except FileNotFoundError:
        raise MissingFileError(
            f'Pretrained XCiT checkpoint {filename!r} does not exist. '
            'Convert official or timm weights with `python '
            'tools/model_converters/xcit2mm.py SRC DST [--backbone-only]` '
            'and point init_cfg.checkpoint at DST, or set '
            'model.backbone.init_cfg=None to train from scratch.') from None
    sd = unwrap_checkpoint(ckpt)
    if prefix and any(k.startswith(prefix) for k in sd):
        sd = strip_prefix(sd, prefix, keep_others=False)
    backbone, _, fmt = to_xcit_mm({'state_dict': sd})
    own = model.state_dict()
    report = compare_state_dicts(own, backbone)
    if report['mismatched']:
        raise CheckpointMismatchError(
            f'{filename!r} does not match this XCiT (wrong arch or patch '
            f"size?): {len(report['mismatched'])} shape mismatches, e.g. "
            f"{report['mismatched'][:3]}. Checkpoint arch: "
            f'{infer_arch(backbone)}.')
    loadable = {k: backbone[k] for k in report['loaded']}
    missing = report['missing']
    skipped = [k for k in report['unexpected'] if CLS_ONLY.match(k)]
    unexpected = [k for k in report['unexpected'] if not CLS_ONLY.match(k)]
    counts = dict(loaded=len(loadable), missing=len(missing),
                  unexpected=len(unexpected),
                  skipped_classification_only=len(skipped), format=fmt)
    if len(loadable) < min_loaded_ratio * len(own):
        raise CheckpointMismatchError(
            f'{filename!r} (format {fmt}, prefix {prefix!r}) fills only '
            f'{len(loadable)} of the {len(own)} XCiT backbone tensors; '
            f'missing e.g. {missing[:5]}. Check init_cfg.prefix and that the '
            'file is an XCiT checkpoint.')
    model.load_state_dict(loadable, strict=False)
    logger.info(f'Loaded pretrained XCiT from {filename}: ' + ', '.join(
        f'{k}={v}' for k, v in counts.items()))
    if missing:
        logger.warning(f'XCiT keys missing from {filename}: {missing[:10]}')
    if unexpected:
        logger.warning(f'Unexpected keys in {filename}: {unexpected[:10]}')
    return counts
