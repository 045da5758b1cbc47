"""Parameters and FLOPs of the model of any config, at any input size.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]]
        [--backbone-only] [--cfg-options k=v ...] [--json OUT]

Counts one forward pass of a 1 x C x H x W input with
:func:`xcit_mm.utils.flops.count_config_flops`, the one FLOP definition of
this tool, ``tools/misc/gen_metafiles.py`` and the model-zoo tables
(``xcit_mm.utils.flops.FLOPS_DEFINITION``, printed with the result). H x W
defaults to the config's own input size: the test crop for classification,
800 x 1344 (800 x 1333 padded) for Mask R-CNN, the 512 x 512 crop for
ADE20k. It counts convolutions, linear layers, the affine part of the norms
and **every matrix product, including the attention matmuls** (XCA's
q^ k^T and attn @ v, the class attention) that mmcv's hook-based counter
misses. One multiply-add counts as one FLOP, the convention of fvcore,
mmengine, DeiT and the XCiT paper (whose 4.8 GFLOPs for XCiT-S12/16 at 224
are multiply-adds).

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

The data preprocessor (normalisation, padding) is never counted. Bad input
(a missing config, a ``--cfg-options`` key that would be ignored, a model
that cannot be built from the config) is reported in one paragraph, exit
status 1.
"""
import argparse
import json
import os
import os.path as osp
import sys

from xcit_mm.cli import add_config_args, load_config, run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Parameters and FLOPs (attention matmuls included) of '
        'the model of a config.')
    add_config_args(parser)
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input size: H (square) or H W (default: the '
                        "config's own input size)")
    parser.add_argument('--backbone-only', action='store_true',
                        help='count the backbone only')
    parser.add_argument('--json', default=None,
                        help='also write the result as JSON here')
    args = parser.parse_args(argv)
    if args.shape is not None:
        if len(args.shape) == 1:
            args.shape = [args.shape[0]] * 2
        if len(args.shape) != 2 or min(args.shape) < 1:
            parser.error(f'--shape takes H or H W (positive), got '
                         f'{args.shape}')
    return args


def get_flops(config: str, shape=None, backbone_only: bool = False,
              cfg_options: dict = None, allow_new_keys: bool = False
              ) -> dict:
    """Build the model of ``config`` and count it (see the module doc);
    ``shape`` (H, W) defaults to the config's own input size."""
    from xcit_mm.utils.flops import count_config_flops
    cfg = load_config(argparse.Namespace(
        config=config, cfg_options=cfg_options,
        allow_new_keys=allow_new_keys))
    result = count_config_flops(cfg, shape, backbone_only)
    result['config'] = config
    return result


def _num(n: float) -> str:
    """4.815 G / 12.3 M / 4.5 k."""
    for unit, scale in (('G', 1e9), ('M', 1e6), ('k', 1e3)):
        if abs(n) >= scale / 10:
            return f'{n / scale:.3f} {unit}'
    return f'{n:.0f}'


def format_result(r: dict) -> str:
    from xcit_mm.utils.flops import FLOPS_DEFINITION
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
        f'definition: {FLOPS_DEFINITION}',
    ]
    if r['uncounted_ops']:
        lines.append('  not counted (element-wise, by convention): ' +
                     ', '.join(sorted(r['uncounted_ops'])))
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)

    def run():
        result = get_flops(args.config, args.shape, args.backbone_only,
                           args.cfg_options, args.allow_new_keys)
        print(format_result(result))
        if args.json:
            os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
            with open(args.json, 'w') as f:
                json.dump(result, f, indent=1)
        return 0

    return run_cli('get_flops.py', run, debug=args.debug, exit=False)


if __name__ == '__main__':
    sys.exit(main())
