"""XCiT checkpoints: the key mapping from the official, timm and DINO
layouts to xcit_mm's, and the checked conversions that build the model the
weights are for.

Layouts (backbone keys; see ``shared/notes/xcit-reference.md``):

- official: ``pos_embeder.*``, fused ``cls_attn_blocks.j.attn.qkv``,
  ``head.*``; files wrap the weights in ``model`` / ``model_ema``;
- timm: ``pos_embed.*``, class attention split into ``attn.q/k/v``;
- DINO (official self-supervised): the official layout without ``head``;
- xcit_mm: ``pos_embed.*``, fused ``qkv``; classifiers prefix ``backbone.``
  and name the head ``head.fc``.

:func:`to_xcit_mm` is the mapping (a pure function on state dicts);
:func:`checkpoint_filter_fn` is the form the backbone's
``init_cfg=dict(type='Pretrained')`` uses. :func:`convert_checkpoint`
converts a classifier or backbone file and :func:`convert_dense_checkpoint`
an official Mask R-CNN / UperNet / Semantic FPN file; both check every key
with :func:`xcit_mm.utils.state_dict.load_checked`.

The official detection (mmdet 2.11) and segmentation (mmseg 0.11) files
differ from the models of ``configs/mask_rcnn``, ``configs/upernet`` and
``configs/sem_fpn`` in three places only:

- the backbone uses the official XCiT names (``backbone.pos_embeder.*``),
  mapped by :func:`foreign_to_backbone`;
- the multi-scale adapter lives inside the backbone
  (``backbone.fpn1.*``, ``backbone.fpn2.*``; ``fpn3`` / ``fpn4`` have no
  weights), where xcit_mm has the neck :class:`XCiTMultiScaleNeck`: ``neck``
  for UperNet, ``neck.0`` when the config chains it before an FPN;
- the official FPN *is* the neck (``neck.*``); chained after the adapter
  it becomes ``neck.1.*``.

The heads keep their names: mmdet 3.x's ``RPNHead`` (``rpn_conv``,
``rpn_cls``, ``rpn_reg``), ``Shared2FCBBoxHead`` (``shared_fcs``,
``fc_cls``, ``fc_reg``), ``FCNMaskHead`` (``convs``, ``upsample``,
``conv_logits``) and ``FPN`` (``lateral_convs``, ``fpn_convs``), and mmseg
1.x's ``UPerHead`` (``psp_modules``, ``bottleneck``, ``lateral_convs``,
``fpn_convs``, ``fpn_bottleneck``), ``FCNHead`` (``convs``), ``FPNHead``
(``scale_heads``) and ``conv_seg``, are those of mmdet 2.x / mmseg 0.x
(both 3.x / 1.x model zoos still serve their 2.x / 0.x weight files).
Every key is nevertheless checked against the built model: nothing is
dropped, nothing is left unfilled.
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple, Union

import torch

from xcit_mm.models.necks.xcit_neck import XCiTMultiScaleNeck
from xcit_mm.utils.errors import (
    CheckpointMismatchError,
    ConfigError,
    MissingFileError,
)
from xcit_mm.utils.state_dict import (
    check_classifier,
    dino_network,
    dino_network_state,
    load_checked,
    strip_common_prefixes,
    strip_prefix,
    unwrap_checkpoint,
)

__all__ = [
    'CLS_ONLY', 'detect_format', 'foreign_to_backbone', 'to_xcit_mm',
    'checkpoint_filter_fn', 'infer_arch', 'convert_checkpoint',
    'convert_dense_checkpoint', 'official_dense_to_mm',
    'build_model_from_config', 'detect_dense_format', 'describe_model'
]

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
    official or timm layout is converted too.

    A DINO training checkpoint (official, or of an xcit_mm DINO run) gives
    the backbone of its teacher, or of its student with ``key='student'``
    (:func:`~xcit_mm.utils.state_dict.dino_network`), and no head: DINO's
    projection head is no classifier. The format then names the network,
    e.g. ``'xcit_mm DINO teacher'``.

    Args:
        ckpt (dict): A loaded checkpoint.
        key (str, optional): The entry of ``ckpt`` to read (see
            :func:`~xcit_mm.utils.state_dict.unwrap_checkpoint`), or
            ``'teacher'`` / ``'student'`` for a DINO training checkpoint.
    """
    network = dino_network(ckpt, key)
    if network is not None:
        layout = 'official' if isinstance(ckpt.get(network), dict) \
            else 'xcit_mm'
        net = strip_common_prefixes(dino_network_state(ckpt, network),
                                    prefixes=('module.', ))
        backbone, _, _ = to_xcit_mm(
            strip_prefix(net, 'backbone.', keep_others=False))
        return backbone, {}, f'{layout} DINO {network}'
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


def checkpoint_filter_fn(state_dict: Dict) -> Tuple[Dict, str]:
    """Any supported XCiT state dict -> (the backbone's keys, with the
    classifier head as ``head.fc.*``, source format): the key mapping of
    :meth:`XCiT.load_pretrained <xcit_mm.models.XCiT.load_pretrained>`."""
    backbone, head, fmt = to_xcit_mm(state_dict)
    backbone.update((f'head.{k}', v) for k, v in head.items())
    return backbone, fmt


def convert_checkpoint(ckpt: dict, backbone_only: bool = False,
                       key: Optional[str] = None) -> Tuple[Dict, dict]:
    """Convert a loaded checkpoint into an xcit_mm state dict, checked.

    The architecture is read off the weight shapes, an XCiT of that
    architecture is built, and every key must match it exactly.

    Args:
        ckpt (dict): A loaded official / timm / DINO / xcit_mm checkpoint.
        backbone_only (bool): Keep only what a dense (det/seg) backbone has:
            no class token, class attention, final norm or head.
        key (str, optional): Wrapper entry to read (e.g. ``'model_ema'``;
            ``'student'`` for the student of a DINO training checkpoint,
            whose teacher is read by default).

    Returns:
        tuple: ``{'backbone.*': ..., 'head.fc.*': ...}`` and a report dict
        with the source format, the architecture and the counts.

    Raises:
        CheckpointMismatchError: keys missing from or unexpected in the
            checkpoint, or of another shape.
    """
    from .xcit import XCiT  # (xcit.py imports this module)
    backbone, head, fmt = to_xcit_mm(ckpt, key)
    not_linear = [k for k in head if not k.startswith('fc.')]
    if not_linear and not backbone_only:
        raise CheckpointMismatchError(
            f'The head of this checkpoint ({not_linear[:3]}) is not a '
            'linear classifier (head.fc.*): it looks like the projection '
            "head of a DINO run's student saved on its own. Write the "
            'backbone alone with --backbone-only (backbone_only=True), or '
            'convert the whole DINO training checkpoint, whose teacher is '
            'taken by default.')
    arch = infer_arch(backbone)
    model = XCiT(arch=arch['arch'], patch_size=arch['patch_size'],
                 out_type='featmap' if backbone_only else 'cls_token')
    state_dict, counts = check_classifier(
        model.state_dict(), backbone, head, backbone_only=backbone_only,
        classification_only=CLS_ONLY,
        what=f'an XCiT {arch} (read as {fmt})')
    return state_dict, dict(source_format=fmt, arch=arch, **counts)


# ------------------------------------------------- detection / segmentation
#: The official adapter's modules, inside the backbone.
OFFICIAL_ADAPTER = re.compile(r'^backbone\.fpn[1-4]\.')
#: Keys that tell which model a dense state dict belongs to, in order.
MODEL_KINDS = (
    ('Mask R-CNN (mmdet)', re.compile(r'^(rpn_head|roi_head)\.')),
    ('UperNet (mmseg UPerHead)', re.compile(r'^decode_head\.psp_modules\.')),
    ('Semantic FPN (mmseg FPNHead)',
     re.compile(r'^decode_head\.scale_heads\.')),
    ('segmentor (mmseg)', re.compile(r'^decode_head\.')),
)

#: describe_model's answers for files that hold no trained det/seg model.
NOT_DENSE = {
    'official classifier': 'XCiT ImageNet classifier or DINO backbone '
    '(official / timm layout)',
    'classifier': 'xcit_mm XCiT classifier',
    'backbone only': 'XCiT backbone only (e.g. converted with '
    'backbone_only=True)',
}


def describe_model(keys) -> str:
    """Which kind of model a state dict's keys belong to, in words."""
    keys = list(keys)
    for name, pattern in MODEL_KINDS:
        if any(pattern.match(k) for k in keys):
            return name
    if any(CLS_ONLY.match(k) for k in keys) and not any(
            k.startswith('backbone.') for k in keys):
        return 'official classifier'
    if any(k.startswith('head.') for k in keys):
        return 'classifier'
    return 'backbone only'


def build_model_from_config(config) -> torch.nn.Module:
    """Build ``config.model`` on the CPU in the config's library scope
    (mmdet, mmseg), without loading any weights.

    Args:
        config (str | mmengine.Config): A config file or a loaded config.
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    if isinstance(config, str):
        if not osp.isfile(config):
            raise MissingFileError(
                f'Config {config!r} does not exist. Pass the config of the '
                'model the weights are for, e.g. '
                'configs/mask_rcnn/mask-rcnn_xcit-s12-p16_fpn_3x_coco.py.')
        config = Config.fromfile(config)
    scope = config.get('default_scope')
    if scope is None or 'model' not in config:
        raise ConfigError(
            'The dense conversion needs a detection or segmentation config '
            '(with `model` and `default_scope`, e.g. a config from '
            'configs/mask_rcnn, configs/upernet or configs/sem_fpn).')
    init_default_scope(scope)
    return MODELS.build(config.model)


def _adapter_and_fpn(model: torch.nn.Module) -> Tuple[str, Optional[str]]:
    """Where the adapter and the module after it (the FPN) sit in model."""
    adapters = [name for name, m in model.named_modules()
                if isinstance(m, XCiTMultiScaleNeck)]
    if len(adapters) != 1:
        raise ConfigError(
            'The official det/seg weights hold XCiT\'s multi-scale adapter '
            '(backbone.fpn1-4), which xcit_mm builds as the neck '
            f'xcit_mm.XCiTMultiScaleNeck; this config has {len(adapters)} '
            'of them. Use a config from configs/mask_rcnn, configs/upernet '
            'or configs/sem_fpn.')
    adapter = adapters[0]
    parent, _, index = adapter.rpartition('.')
    if parent and index.isdigit() and isinstance(
            model.get_submodule(parent), torch.nn.Sequential) and int(
                index) + 1 < len(model.get_submodule(parent)):
        return adapter, f'{parent}.{int(index) + 1}'
    return adapter, None


def official_dense_to_mm(sd: Dict, adapter: str,
                         fpn: Optional[str]) -> Dict:
    """Rename an official det/seg state dict into xcit_mm's names.

    Pure key mapping (see the module docstring); nothing is checked here.

    Args:
        sd (dict): The official state dict (``backbone.*``, ``neck.*``,
            heads).
        adapter (str): Module path of the ``XCiTMultiScaleNeck`` in the
            target model (``'neck'`` or ``'neck.0'``).
        fpn (str, optional): Module path of the neck that follows the
            adapter (``'neck.1'``); None when nothing follows it, and then
            official ``neck.*`` keys are kept as they are (and will not
            match).
    """
    backbone, out = OrderedDict(), OrderedDict()
    for k, v in sd.items():
        if OFFICIAL_ADAPTER.match(k):
            out[f'{adapter}.{k[len("backbone."):]}'] = v
        elif k.startswith('backbone.'):
            backbone[k[len('backbone.'):]] = v
        elif k.startswith('neck.') and fpn is not None:
            out[f'{fpn}.{k[len("neck."):]}'] = v
        else:
            out[k] = v
    mapped, head = foreign_to_backbone(backbone)
    # foreign_to_backbone reads an official ``head.*`` as a classifier's;
    # a dense backbone has none, so give such keys back unchanged
    mapped.update((f'head.{k[len("fc."):]}', v) for k, v in head.items())
    result = OrderedDict((f'backbone.{k}', v) for k, v in mapped.items())
    result.update(out)
    return result


def detect_dense_format(sd: Dict) -> str:
    """``'official'`` (mmdet 2.x / mmseg 0.x XCiT file), ``'xcit_mm'``
    (already converted) or ``'other'``."""
    if any(k.startswith(('backbone.pos_embeder.', 'backbone.fpn1.'))
           for k in sd):
        return 'official'
    if any(k.startswith('backbone.pos_embed.') for k in sd):
        return 'xcit_mm'
    return 'other'


def _arch_of(sd: Dict) -> str:
    """The XCiT read off a state dict in xcit_mm names, in words."""
    try:
        arch = infer_arch({k[len('backbone.'):]: v for k, v in sd.items()
                           if k.startswith('backbone.')})
    except CheckpointMismatchError:
        return 'unknown'
    return (f"embed_dims {arch['arch']['embed_dims']}, "
            f"{arch['arch']['depth']} blocks, patch {arch['patch_size']}")


def convert_dense_checkpoint(ckpt: dict,
                             model: Union[torch.nn.Module, str, object],
                             key: Optional[str] = None) -> Tuple[Dict, dict]:
    """Convert an official XCiT det/seg checkpoint for ``model``, checked.

    Args:
        ckpt (dict): The loaded official file (weights under
            ``state_dict``; its ``meta`` may hold ``CLASSES`` / ``PALETTE``).
        model (nn.Module | str | Config): The target model, or the config
            that builds it (see :func:`build_model_from_config`).
        key (str, optional): Wrapper entry to read (default: the first of
            ``state_dict``, ``model``, ``model_ema``, ``module``).

    Returns:
        tuple: The xcit_mm state dict (every tensor of the model, nothing
        else) and a report with ``source_format``, ``model``, ``arch``,
        ``converted``, ``adapter_tensors``, ``backbone_tensors``, ``missing``
        and ``unexpected`` (both 0) and ``dataset_meta`` (``classes`` /
        ``palette`` from the file's ``meta``, or None).

    Raises:
        CheckpointMismatchError: the file is not a det/seg XCiT checkpoint
            for this model (a classifier, another task, another arch), or
            keys are missing, unexpected or of another shape.
        ConfigError: the model is not a det/seg model with an
            ``XCiTMultiScaleNeck``.
    """
    if not isinstance(model, torch.nn.Module):
        model = build_model_from_config(model)
    try:
        sd = unwrap_checkpoint(ckpt, key)
    except (TypeError, KeyError) as e:
        raise CheckpointMismatchError(f'Cannot read the checkpoint: {e}')
    sd = strip_common_prefixes(
        {k: v for k, v in sd.items() if torch.is_tensor(v)},
        prefixes=('module.', ))
    expected = model.state_dict()
    target = describe_model(expected)
    source = describe_model(sd)
    fmt = detect_dense_format(sd)
    if target in NOT_DENSE:
        raise ConfigError(
            f'The config builds an {NOT_DENSE[target]}, not a detection / '
            'segmentation model. The dense conversion is for configs of '
            'configs/mask_rcnn, configs/upernet and configs/sem_fpn; convert '
            'classification weights with convert_checkpoint instead.',
            remedy='convert-xcit')
    if source in NOT_DENSE:
        how = ('set model.backbone.init_cfg.checkpoint to it'
               if source == 'backbone only' else
               'convert it with xcit_mm.models.backbones.xcit_convert.'
               'convert_checkpoint(ckpt, backbone_only=True), save the result'
               ' and set model.backbone.init_cfg.checkpoint to that file')
        raise CheckpointMismatchError(
            f'This file holds an {NOT_DENSE[source]}, not trained {target} '
            f'weights, so there is nothing to evaluate. To fine-tune from '
            f'it, {how}; to evaluate, download the trained file listed in '
            "the README of the config's folder.",
            remedy=None if source == 'backbone only' else 'convert-xcit')
    if fmt == 'other':
        raise CheckpointMismatchError(
            'This is not an XCiT detection / segmentation checkpoint: it '
            'has no backbone.pos_embeder.* / backbone.fpn1.* (official) nor '
            f'backbone.pos_embed.* (xcit_mm) keys. It looks like a {source}'
            f' model; first keys: {list(sd)[:4]}.')
    adapter, fpn = _adapter_and_fpn(model)
    converted = official_dense_to_mm(sd, adapter, fpn) if fmt == 'official' \
        else OrderedDict(sd)
    if source != target:
        hint = (f'The checkpoint is a {source} model but the config '
                f'builds a {target}: pass the config of the task the '
                'weights were trained for.')
    elif _arch_of(converted) != _arch_of(expected):
        hint = (f'The checkpoint\'s backbone ({_arch_of(converted)}) is '
                f'not the config\'s ({_arch_of(expected)}): pick the '
                'config of the same XCiT size and patch size.')
    else:
        hint = ('The config differs from the trained model (head '
                'widths, number of classes or FPN levels?).')
    state_dict, _ = load_checked(expected, {'state_dict': converted},
                                 what=f'this {target} (read as {fmt})',
                                 hint=hint)
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    dataset_meta = meta.get('dataset_meta')
    if dataset_meta is None and meta.get('CLASSES') is not None:
        dataset_meta = dict(classes=tuple(meta['CLASSES']))
        if meta.get('PALETTE') is not None:
            dataset_meta['palette'] = [list(c) for c in meta['PALETTE']]
    report = dict(
        source_format=fmt,
        model=target,
        arch=_arch_of(state_dict),
        converted=len(state_dict),
        backbone_tensors=sum(k.startswith('backbone.') for k in state_dict),
        adapter_tensors=sum(k.startswith(adapter + '.') for k in state_dict),
        missing=0,
        unexpected=0,
        dataset_meta=dataset_meta)
    return state_dict, report
