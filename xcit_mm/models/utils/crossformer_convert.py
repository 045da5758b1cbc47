"""CrossFormer key layouts: read official and xcit_mm weights, check the
official position buffers, and load weights into a backbone.

Layouts (the backbone keys of :class:`~xcit_mm.models.CrossFormer` are the
official ones, so reading mostly drops and renames): see
:mod:`xcit_mm.models.converters.crossformer`, which builds a model to check
a whole conversion. Nothing here imports the backbone.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, List, Optional

import torch
from mmengine.logging import MMLogger

from xcit_mm.runtime.checkpoint import safe_load
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


def dpb_offsets(gh: int, gw: int,
                device: Optional[torch.device] = None) -> torch.Tensor:
    """All relative offsets (dy, dx) of a gh x gw group, row-major:
    ((2gh-1)(2gw-1), 2)."""
    dy = torch.arange(1 - gh, gh, device=device)
    dx = torch.arange(1 - gw, gw, device=device)
    return torch.stack(torch.meshgrid(dy, dx, indexing='ij'),
                       -1).reshape(-1, 2).float()


def dpb_relative_index(gh: int, gw: int,
                       device: Optional[torch.device] = None) -> torch.Tensor:
    """(N, N) row of :func:`dpb_offsets` for query i, key j: the offset
    ``pos(i) - pos(j)`` in group coordinates."""
    ys, xs = torch.meshgrid(torch.arange(gh, device=device),
                            torch.arange(gw, device=device),
                            indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + gh - 1
    dx = xs[:, None] - xs[None, :] + gw - 1
    return dy * (2 * gw - 1) + dx


def read_arch(backbone: Dict) -> dict:
    """The architecture that the weight shapes fix: ``embed_dims``,
    ``depths``, ``num_heads`` and ``acl`` (CrossFormer++'s active-channel
    layers). Group sizes and intervals hold no weights."""
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
    return dict(embed_dims=int(embed_dims), depths=depths,
                num_heads=tuple(int(h) for h in num_heads),
                acl=any('.ex_conv.' in k for k in backbone))


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


def _compare(expected: Dict, got: Dict):
    r = compare_state_dicts(expected, got)
    return r['missing'], r['unexpected'], r['mismatched']


def load_pretrained_backbone(model: torch.nn.Module, filename: str,
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
            f'CrossFormer (arch {read_arch(backbone)} in the '
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
