"""Convert official, DINO or timm XCiT weights to an xcit_mm checkpoint.

    python tools/model_converters/xcit2mm.py SRC DST [--backbone-only]
        [--key model_ema]
    python tools/model_converters/xcit2mm.py SRC DST --config CONFIG

SRC: an official ``.pth`` (weights under ``model``, ``model_ema`` or
``state_dict``, or raw), a DINO backbone file, a timm state dict, or a DINO
training checkpoint (official, or ``epoch_N.pth`` of an xcit_mm DINO run),
of which the teacher's backbone is converted (``--key student`` for the
student's; DINO's projection head is never converted).
DST: a checkpoint that mmengine loads into an xcit_mm classifier
(``backbone.*`` + ``head.fc.*``), or with ``--backbone-only`` into the
backbone of a Mask R-CNN / UperNet config (no class token, class attention,
final norm or head).

With ``--config``, SRC is an official trained detection / segmentation file
(``maskrcnn_xcit_*.pth``, ``upernet_xcit_*.pth``, ``sem_fpn_xcit_*.pth``)
and DST the whole model of CONFIG (a config of ``configs/mask_rcnn``,
``configs/upernet`` or ``configs/sem_fpn`` of the same XCiT size and patch
size): evaluate it with ``python tools/test.py CONFIG DST``. The model is
built from CONFIG on the CPU and every tensor must match.

The file is read with ``torch.load(weights_only=True)``; the only non-tensor
objects accepted are listed in ``xcit_mm.runtime.checkpoint``.
"""
import argparse
import os.path as osp
import sys

from xcit_mm.cli import run_cli
from xcit_mm.models.backbones.xcit_convert import (
    convert_checkpoint,
    convert_dense_checkpoint,
)
from xcit_mm.runtime.checkpoint import safe_load
from xcit_mm.runtime.fileio import atomic_torch_save
from xcit_mm.utils.state_dict import dino_choice


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official / DINO / timm checkpoint')
    parser.add_argument('dst', help='output xcit_mm checkpoint')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--backbone-only', action='store_true',
                      help='write the dense-task backbone only (det/seg)')
    mode.add_argument('--config', metavar='CONFIG',
                      help='SRC is an official Mask R-CNN / UperNet / '
                      'Semantic FPN file: convert it for this config')
    parser.add_argument('--key', default=None,
                        help='wrapper entry to read, e.g. model_ema, or '
                        'student / teacher for a DINO training checkpoint '
                        '(default: state_dict, model, model_ema, module; '
                        'the teacher of a DINO checkpoint)')
    return parser.parse_args(argv)


def convert_dense(args) -> int:
    ckpt = safe_load(args.src)
    state_dict, report = convert_dense_checkpoint(ckpt, args.config,
                                                  args.key)
    meta = dict(converted_from=osp.basename(args.src),
                config=osp.basename(args.config),
                **{k: v for k, v in report.items() if k != 'dataset_meta'})
    if report['dataset_meta']:
        meta['dataset_meta'] = report['dataset_meta']
    atomic_torch_save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'source format: {report["source_format"]}; model: '
          f'{report["model"]}; backbone: {report["arch"]}')
    rest = report['converted'] - report['backbone_tensors'] - report[
        'adapter_tensors']
    print(f'converted: {report["converted"]} tensors '
          f'({report["backbone_tensors"]} backbone, '
          f'{report["adapter_tensors"]} multi-scale adapter, {rest} FPN / '
          f'heads); missing: {report["missing"]}; unexpected: '
          f'{report["unexpected"]}')
    print(f'saved {args.dst}')
    return 0


def convert(args) -> int:
    if args.config:
        return convert_dense(args)
    ckpt = safe_load(args.src)
    state_dict, report = convert_checkpoint(ckpt, args.backbone_only,
                                            args.key)
    meta = dict(converted_from=osp.basename(args.src), **report)
    atomic_torch_save(dict(state_dict=state_dict, meta=meta), args.dst)
    arch = report['arch']
    print(f'source format: {report["source_format"]}; arch: '
          f'{arch["arch"]}, patch {arch["patch_size"]}')
    note = dino_choice(report['source_format'], '--key')
    if note:
        print(note)
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
