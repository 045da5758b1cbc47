"""Convert official and timm XCiT weights to xcit_mm's layout, and load them.

Layouts (backbone keys; see ``shared/notes/xcit-reference.md``):

- official: ``pos_embeder.*``, fused ``cls_attn_blocks.j.attn.qkv``,
  ``head.*``; files wrap the weights in ``model`` / ``model_ema``;
- timm: ``pos_embed.*``, class attention split into ``attn.q/k/v``;
- DINO (official self-supervised): the official layout without ``head``;
- xcit_mm: ``pos_embed.*``, fused ``qkv``; classifiers prefix ``backbone.``
  and name the head ``head.fc``.
"""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
from mmengine.logging import MMLogger

from xcit_mm.utils.checkpoint import safe_load

#: Keys that exist only in classification mode (not in a dense backbone).
CLS_ONLY = re.compile(r'^(cls_token|cls_attn_blocks\.|norm\.|head\.)')

#: Checkpoint keys that may wrap the weights, in order of preference.
WRAPPER_KEYS = ('state_dict', 'model', 'model_ema', 'module')


def unwrap_state_dict(ckpt: dict, key: Optional[str] = None) -> Dict:
    """Return the tensor dict inside a checkpoint.

    Args:
        ckpt (dict): What ``torch.load`` returned.
        key (str, optional): The wrapper to use (e.g. ``'model_ema'``).
            Defaults to the first of ``state_dict``, ``model``,
            ``model_ema``, ``module`` present, else ``ckpt`` itself.
    """
    if not isinstance(ckpt, dict):
        raise TypeError(f'Expected a checkpoint dict, got {type(ckpt)}.')
    if key is not None:
        if key not in ckpt:
            raise KeyError(f'Checkpoint has no {key!r} entry; it has '
                           f'{sorted(ckpt)[:10]}.')
        return ckpt[key]
    for k in WRAPPER_KEYS:
        if k in ckpt and isinstance(ckpt[k], dict):
            return ckpt[k]
    return ckpt


def _strip_prefixes(sd: Dict) -> Dict:
    """Drop DDP / DINO prefixes (``module.``, ``backbone.``) shared by all."""
    for prefix in ('module.', 'backbone.'):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


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
    raise ValueError(
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

    Both dicts are unprefixed (``blocks.0...``, ``fc.weight``).
    """
    sd = _strip_prefixes(unwrap_state_dict(ckpt, key))
    fmt = detect_format(sd)
    if fmt == 'xcit_mm':
        backbone = {k[9:]: v for k, v in sd.items()
                    if k.startswith('backbone.')}
        head = {k[5:]: v for k, v in sd.items() if k.startswith('head.')}
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
        raise KeyError(f'Cannot infer the XCiT arch: {e} is missing.') from None
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
        raise FileNotFoundError(
            f'Pretrained XCiT checkpoint {filename!r} does not exist. '
            'Convert official or timm weights with `python '
            'tools/model_converters/xcit2mm.py SRC DST [--backbone-only]` '
            'and point init_cfg.checkpoint at DST, or set '
            'model.backbone.init_cfg=None to train from scratch.') from None
    sd = unwrap_state_dict(ckpt)
    if prefix and any(k.startswith(prefix) for k in sd):
        sd = {k[len(prefix):]: v for k, v in sd.items()
              if k.startswith(prefix)}
    backbone, _, fmt = to_xcit_mm({'state_dict': sd})
    own = model.state_dict()
    mismatched = [
        f'{k}: checkpoint {tuple(backbone[k].shape)} vs model '
        f'{tuple(v.shape)}' for k, v in own.items()
        if k in backbone and backbone[k].shape != v.shape
    ]
    if mismatched:
        raise ValueError(
            f'{filename!r} does not match this XCiT (wrong arch or patch '
            f'size?): {len(mismatched)} shape mismatches, e.g. '
            f'{mismatched[:3]}. Checkpoint arch: {infer_arch(backbone)}.')
    loadable = {k: v for k, v in backbone.items() if k in own}
    missing = [k for k in own if k not in loadable]
    unexpected = [k for k in backbone if k not in own]
    skipped = [k for k in unexpected if CLS_ONLY.match(k)]
    unexpected = [k for k in unexpected if not CLS_ONLY.match(k)]
    counts = dict(loaded=len(loadable), missing=len(missing),
                  unexpected=len(unexpected),
                  skipped_classification_only=len(skipped), format=fmt)
    if len(loadable) < min_loaded_ratio * len(own):
        raise RuntimeError(
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


def convert_checkpoint(ckpt: dict, backbone_only: bool = False,
                       key: Optional[str] = None) -> Tuple[Dict, dict]:
    """Convert a loaded checkpoint into an xcit_mm state dict, checked.

    The architecture is read off the weight shapes, an XCiT of that
    architecture is built, and every key must match it exactly.

    Args:
        ckpt (dict): A loaded official / timm / DINO / xcit_mm checkpoint.
        backbone_only (bool): Keep only what a dense (det/seg) backbone has:
            no class token, class attention, final norm or head.
        key (str, optional): Wrapper entry to read (e.g. ``'model_ema'``).

    Returns:
        tuple: ``{'backbone.*': ..., 'head.fc.*': ...}`` and a report dict
        with the source format, the architecture and the counts.

    Raises:
        KeyError: keys missing from or unexpected in the checkpoint.
    """
    from xcit_mm.models.backbones.xcit import XCiT
    backbone, head, fmt = to_xcit_mm(ckpt, key)
    arch = infer_arch(backbone)
    model = XCiT(arch=arch['arch'], patch_size=arch['patch_size'],
                 out_type='featmap' if backbone_only else 'cls_token')
    expected = model.state_dict()
    if backbone_only:
        dropped = [k for k in backbone if CLS_ONLY.match(k)]
        backbone = {k: v for k, v in backbone.items() if k not in dropped}
        dropped += [f'head.{k}' for k in head]
        head = {}
    else:
        dropped = []
    missing = [k for k in expected if k not in backbone]
    unexpected = [k for k in backbone if k not in expected]
    bad_shape = [k for k in expected if k in backbone
                 and backbone[k].shape != expected[k].shape]
    if missing or unexpected or bad_shape:
        raise KeyError(
            f'The checkpoint ({fmt}) does not convert to an XCiT {arch}: '
            f'{len(missing)} missing (e.g. {missing[:4]}), {len(unexpected)} '
            f'unexpected (e.g. {unexpected[:4]}), {len(bad_shape)} with the '
            f'wrong shape (e.g. {bad_shape[:4]}).')
    if head:
        fc_w = head.get('fc.weight')
        if (set(head) - {'fc.weight', 'fc.bias'} or fc_w is None
                or fc_w.shape[1] != arch['arch']['embed_dims']):
            raise KeyError(f'Unexpected classification head in the '
                           f'checkpoint: {sorted(head)}.')
    state_dict = OrderedDict((f'backbone.{k}', v) for k, v in backbone.items())
    state_dict.update((f'head.{k}', v) for k, v in head.items())
    report = dict(
        source_format=fmt,
        arch=arch,
        converted=len(state_dict),
        backbone_tensors=len(backbone),
        head_tensors=len(head),
        num_classes=int(head['fc.weight'].shape[0]) if head else None,
        missing=len(missing),
        unexpected=len(unexpected),
        dropped_for_backbone_only=len(dropped))
    return state_dict, report
