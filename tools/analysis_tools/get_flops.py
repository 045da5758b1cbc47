"""Parameters and FLOPs of the model of any config, at any input size.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]]
        [--backbone-only] [--cfg-options k=v ...] [--json OUT]

Counts one forward pass of a 1 x 3 x H x W input (default 224 x 224) with
:func:`xcit_mm.utils.get_model_complexity`: convolutions, linear layers, the
affine part of the norms and **every matrix product, including the attention
matmuls** (XCA's q^ k^T and attn @ v, the class attention) that mmcv's
hook-based counter misses. One multiply-add counts as one FLOP, the
convention of fvcore, mmengine, DeiT and the XCiT paper (whose 4.8 GFLOPs for
XCiT-S12/16 at 224 are multiply-adds).

What is counted depends on the model of the config (``--backbone-only``:
the backbone alone):

- classifier (mmpretrain): backbone + neck + head;
- segmentor (mmseg): backbone + neck + decode head (the auxiliary head runs
  only in training and is not counted);
- two-stage detector (mmdet, e.g. Mask R-CNN): backbone + neck + RPN head.
  The RoI box and mask heads are not counted: their cost depends on the
  number of proposals, i.e. on the image content;
- single-stage detector (mmdet): backbone + neck + bbox head;
- anything else with a ``backbone``: the backbone.

The data preprocessor (normalisation, padding) is never counted.
"""
import argparse
import importlib
import json
import os
import os.path as osp
import sys
from typing import Tuple

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction

SCOPES = ('mmpretrain', 'mmdet', 'mmseg')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Parameters and FLOPs (attention matmuls included) of '
        'the model of a config.')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--shape', type=int, nargs='+', default=[224],
                        help='input size: H (square) or H W')
    parser.add_argument('--backbone-only', action='store_true',
                        help='count the backbone only')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. '
                        'model.backbone.arch=t12')
    parser.add_argument('--json', default=None,
                        help='also write the result as JSON here')
    args = parser.parse_args(argv)
    if len(args.shape) == 1:
        args.shape = [args.shape[0]] * 2
    if len(args.shape) != 2 or min(args.shape) < 1:
        parser.error(f'--shape takes H or H W (positive), got {args.shape}')
    return args


def _scope_of(cfg: Config) -> str:
    """The library that builds ``cfg.model``: the config's default_scope,
    else the first of mmpretrain / mmdet / mmseg that knows the type."""
    if cfg.get('default_scope'):
        return cfg.default_scope
    model_type = cfg.model.get('type', '')
    if '.' in model_type:
        return model_type.split('.')[0]
    for scope in SCOPES:
        try:
            registry = importlib.import_module(f'{scope}.registry').MODELS
        except ImportError:
            continue
        if registry.get(model_type) is not None:
            return scope
    raise KeyError(
        f'No library among {SCOPES} has a model type {model_type!r}. Set '
        '`default_scope` in the config (e.g. default_scope = "mmdet").')


def build_model(cfg: Config) -> Tuple[nn.Module, str]:
    """Build ``cfg.model`` in its library's registry; return it and the
    scope."""
    from mmengine.registry import init_default_scope
    if 'model' not in cfg:
        raise KeyError('get_flops: the config has no `model` entry; pass a '
                       'model or full training config.')
    scope = _scope_of(cfg)
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    return registry.build(cfg.model), scope


class CountedPart(nn.Module):
    """``forward(x)`` runs the part of ``model`` that is counted."""

    def __init__(self, model: nn.Module, kind: str):
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(self, x: torch.Tensor):
        m = self.model
        if self.kind == 'backbone':
            return m.backbone(x)
        if self.kind in ('classifier', 'segmentor'):
            return m(x, mode='tensor')
        feats = m.extract_feat(x)
        if self.kind == 'two-stage detector':
            return feats, m.rpn_head(feats)
        if self.kind == 'single-stage detector':
            return feats, m.bbox_head(feats)
        raise ValueError(self.kind)  # pragma: no cover


#: The submodules each kind runs (for the parameter count).
PARTS = {
    'classifier': ('backbone', 'neck', 'head'),
    'segmentor': ('backbone', 'neck', 'decode_head'),
    'two-stage detector': ('backbone', 'neck', 'rpn_head'),
    'single-stage detector': ('backbone', 'neck', 'bbox_head'),
    'backbone': ('backbone', ),
}

#: What each kind counts, in words.
COUNTED = {
    'classifier': 'backbone + neck + head',
    'segmentor': 'backbone + neck + decode head (auxiliary head not counted)',
    'two-stage detector': 'backbone + neck + RPN head (RoI heads not '
    'counted: their cost depends on the number of proposals)',
    'single-stage detector': 'backbone + neck + bbox head',
    'backbone': 'backbone only',
}


def model_kind(model: nn.Module, scope: str, backbone_only: bool) -> str:
    if backbone_only:
        if not hasattr(model, 'backbone'):
            raise ValueError('--backbone-only: this model has no backbone.')
        return 'backbone'
    if scope == 'mmpretrain' and hasattr(model, 'extract_feat'):
        return 'classifier'
    if hasattr(model, 'decode_head'):
        return 'segmentor'
    if hasattr(model, 'roi_head') and hasattr(model, 'rpn_head'):
        return 'two-stage detector'
    if hasattr(model, 'bbox_head') and hasattr(model, 'extract_feat'):
        return 'single-stage detector'
    if hasattr(model, 'backbone'):
        return 'backbone'
    raise ValueError(f'get_flops: cannot tell which part of a '
                     f'{type(model).__name__} to run; it has no backbone.')


def get_flops(config: str, shape=(224, 224), backbone_only: bool = False,
              cfg_options: dict = None) -> dict:
    """Build the model of ``config`` and count it (see the module doc)."""
    from xcit_mm.utils.flops import get_model_complexity
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model, scope = build_model(cfg)
    kind = model_kind(model, scope, backbone_only)
    in_channels = 3
    backbone = getattr(model, 'backbone', None)
    if backbone is not None and hasattr(backbone, 'in_channels'):
        in_channels = backbone.in_channels
    part = CountedPart(model, kind)
    result = get_model_complexity(part, (in_channels, *shape))
    params = {
        p
        for name in PARTS[kind] if getattr(model, name, None) is not None
        for p in getattr(model, name).parameters()
    }  # a set: a shared parameter counts once
    result.pop('params')
    result.update(
        config=config, model=type(model).__name__, scope=scope, kind=kind,
        counted=COUNTED[kind], input_shape=[1, in_channels, *shape],
        params_counted=sum(p.numel() for p in params),
        params_model=sum(p.numel() for p in model.parameters()))
    return result


def _num(n: float) -> str:
    """4.815 G / 12.3 M / 4.5 k."""
    for unit, scale in (('G', 1e9), ('M', 1e6), ('k', 1e3)):
        if abs(n) >= scale / 10:
            return f'{n / scale:.3f} {unit}'
    return f'{n:.0f}'


def format_result(r: dict) -> str:
    ops = ', '.join(f'{k} {_num(v)}' for k, v in r['by_operator'].items())
    lines = [
        f'config:  {r["config"]} ({r["scope"]} {r["model"]})',
        f'input:   {"x".join(map(str, r["input_shape"]))}',
        f'counted: {r["counted"]}',
        f'params:  {_num(r["params_counted"])} counted'
        f' ({_num(r["params_model"])} in the whole model)',
        f'FLOPs:   {_num(r["flops"])} (1 FLOP = 1 multiply-add, as '
        f'fvcore / mmengine / the XCiT paper; {_num(2 * r["flops"])} '
        'counting multiplies and adds apart)',
        f'  attention matmuls: {_num(r["attention_flops"])}',
        f'  by operator: {ops}',
    ]
    if r['uncounted_ops']:
        lines.append('  not counted (element-wise, by convention): ' +
                     ', '.join(sorted(r['uncounted_ops'])))
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.config):
        print(f'get_flops: error: no config file {args.config!r}',
              file=sys.stderr)
        return 1
    try:
        result = get_flops(args.config, tuple(args.shape),
                           args.backbone_only, args.cfg_options)
    except (KeyError, ValueError) as e:
        print(f'get_flops: error: {e}', file=sys.stderr)
        return 1
    print(format_result(result))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
