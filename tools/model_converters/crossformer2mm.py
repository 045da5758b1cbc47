"""Convert official CrossFormer / CrossFormer++ weights to xcit_mm.

    python tools/model_converters/crossformer2mm.py SRC DST [--backbone-only]
        [--key model]

SRC: an official classification file of either code branch (weights under
``model``, beside the optimizer and a yacs config, which is read as plain
data), an official mmdet 2.x / mmseg 0.x detection or segmentation
checkpoint (only its backbone converts), or an xcit_mm checkpoint.
DST: a checkpoint that mmengine loads into an xcit_mm CrossFormer classifier
(``backbone.*`` + ``head.fc.*``), or with ``--backbone-only`` into the
backbone of a detection / segmentation config (no final norm or head).
Every key is checked against a CrossFormer of the arch read off the
weights; the counts are printed.
"""
import argparse
import os.path as osp
import sys

from xcit_mm.cli import run_cli
from xcit_mm.models.backbones.crossformer_convert import (
    convert_checkpoint,
    load_official,
)
from xcit_mm.runtime.fileio import atomic_torch_save


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official or xcit_mm checkpoint')
    parser.add_argument('dst', help='output xcit_mm checkpoint')
    parser.add_argument('--backbone-only', action='store_true',
                        help='write the dense-task backbone only (det/seg)')
    parser.add_argument('--key', default=None,
                        help='wrapper entry to read (default: state_dict, '
                        'model, model_ema, module)')
    return parser.parse_args(argv)


def convert(args) -> int:
    ckpt = load_official(args.src)
    state_dict, report = convert_checkpoint(ckpt, args.backbone_only,
                                            args.key)
    meta = dict(converted_from=osp.basename(args.src), **report)
    atomic_torch_save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'source format: {report["source_format"]}; arch: {report["arch"]}')
    print(f'converted: {report["converted"]} tensors '
          f'({report["backbone_tensors"]} backbone, {report["head_tensors"]} '
          f'head); missing: {report["missing"]}; unexpected: '
          f'{report["unexpected"]}; official buffers checked and dropped: '
          f'{report["buffers_checked_and_dropped"]}; dropped '
          f'(backbone-only): {report["dropped_for_backbone_only"]}')
    print(f'saved {args.dst}')
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli('crossformer2mm', lambda: convert(args))


if __name__ == '__main__':
    sys.exit(main())
