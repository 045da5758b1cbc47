"""Convert official, DINO or timm XCiT weights to an xcit_mm checkpoint.

    python tools/model_converters/xcit2mm.py SRC DST [--backbone-only]
        [--key model_ema]

SRC: an official ``.pth`` (weights under ``model``, ``model_ema`` or
``state_dict``, or raw), a DINO backbone file, or a timm state dict.
DST: a checkpoint that mmengine loads into an xcit_mm classifier
(``backbone.*`` + ``head.fc.*``), or with ``--backbone-only`` into the
backbone of a Mask R-CNN / UperNet config (no class token, class attention,
final norm or head). The file is read with ``torch.load(weights_only=True)``;
the only non-tensor objects accepted are listed in
``xcit_mm.utils.checkpoint``.
"""
import argparse
import os
import os.path as osp
import sys

import torch

from xcit_mm.models.converters import convert_checkpoint
from xcit_mm.utils.checkpoint import safe_load
from xcit_mm.utils.cli import run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official / DINO / timm checkpoint')
    parser.add_argument('dst', help='output xcit_mm checkpoint')
    parser.add_argument('--backbone-only', action='store_true',
                        help='write the dense-task backbone only (det/seg)')
    parser.add_argument('--key', default=None,
                        help='wrapper entry to read, e.g. model_ema '
                        '(default: state_dict, model, model_ema, module)')
    return parser.parse_args(argv)


def convert(args) -> int:
    ckpt = safe_load(args.src)
    state_dict, report = convert_checkpoint(ckpt, args.backbone_only,
                                            args.key)
    meta = dict(converted_from=osp.basename(args.src), **report)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    tmp = args.dst + '.tmp'
    torch.save(dict(state_dict=state_dict, meta=meta), tmp)
    os.replace(tmp, args.dst)  # never leave a half-written DST
    arch = report['arch']
    print(f'source format: {report["source_format"]}; arch: '
          f'{arch["arch"]}, patch {arch["patch_size"]}')
    print(f'converted: {report["converted"]} tensors '
          f'({report["backbone_tensors"]} backbone, {report["head_tensors"]} '
          f'head); missing: {report["missing"]}; unexpected: '
          f'{report["unexpected"]}; dropped (backbone-only): '
          f'{report["dropped_for_backbone_only"]}')
    print(f'saved {args.dst}')
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli('xcit2mm', lambda: convert(args))


if __name__ == '__main__':
    sys.exit(main())
