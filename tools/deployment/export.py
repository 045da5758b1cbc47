"""Export a trained model to ONNX, and check it against PyTorch.

    python tools/deployment/export.py CONFIG CHECKPOINT --format onnx
        [--shape H W] [--dynamic] [--verify [--verify-shape H W]]
        [--out FILE] [--opset 18] [--cfg-options k=v ...]

What is exported follows from the config (see :mod:`xcit_mm.apis.export`):
the classifier (logits), the whole-image segmentor (logits at the input's
size), the backbone + neck of a detector (the FPN levels), or DINO's
teacher backbone (features). The graph takes the image as the pipeline
hands it to the model (float32 N x C x H x W, pixels 0-255, BGR for colour
images of mmcv's loader, already resized); the normalisation is inside.

``--shape H W`` is the example input (default: 224 224 for classifiers and
features, 512 512 for dense models). ``--dynamic`` makes the batch, height
and width symbolic: one file serves any size (XCiT computes its positional
encoding per grid; CrossFormer pads to its groups). ``--verify`` runs
onnxruntime and PyTorch on the same random images at ``--shape`` and, with
``--dynamic``, also at ``--verify-shape`` (default: a second size 1.5 times
as large, in multiples of 32) and fails (exit status 1) if any
output differs by more than 1e-4 relative (max |onnx - torch| / max
|torch|).

Needs onnx, onnxruntime and onnxscript: pip install -r
requirements/deploy.txt (tools/install.sh installs them).
"""
import argparse
import os
import os.path as osp
import sys

from xcit_mm.cli import add_config_args, load_config, run_cli
from xcit_mm.utils.errors import XCiTMMError

DEFAULT_SHAPE = dict(classification=(224, 224), features=(224, 224),
                     detection=(512, 512), segmentation=(512, 512))


class VerificationError(XCiTMMError):
    """onnxruntime's outputs differ from PyTorch's."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.split('\n')[6:]))
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint saved by training')
    add_config_args(parser, config=False)
    parser.add_argument('--format', default='onnx', choices=['onnx'])
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--dynamic', action='store_true',
                        help='symbolic batch, height and width')
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime with PyTorch')
    parser.add_argument('--verify-shape', type=int, nargs=2,
                        metavar=('H', 'W'),
                        help='the second size of --dynamic --verify')
    parser.add_argument('--out', help='output file (default: next to the '
                        'checkpoint, with .onnx)')
    parser.add_argument('--opset', type=int, default=18)
    return parser.parse_args(argv)


def second_shape(shape, divisor):
    """About 1.5 times ``shape``, a multiple of ``divisor``, not square
    when ``shape`` is (a different aspect ratio tests more)."""
    step = max(divisor, 32)  # the coarsest stride of the dense models
    h = (shape[0] * 3 // 2 + step - 1) // step * step
    w = (shape[1] * 5 // 4 + step - 1) // step * step
    return (h, w)


def export(args) -> int:
    from xcit_mm.apis import init_model, task_of
    from xcit_mm.apis.export import (
        Exportable,
        check_shape,
        example_image,
        export_onnx,
        input_channels,
        require_onnx,
        size_divisor,
        verify,
    )
    require_onnx()
    cfg = load_config(args)
    task = task_of(cfg)
    model = init_model(cfg, args.checkpoint)
    divisor = max(size_divisor(model), 1)
    shape = tuple(args.shape or DEFAULT_SHAPE[task])
    check_shape(shape, divisor)
    channels = input_channels(model)
    module = Exportable(model, task).eval()
    out = args.out or osp.splitext(args.checkpoint)[0] + '.onnx'
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    batch = 2 if args.dynamic else 1
    names = export_onnx(module, example_image(shape, channels, batch), out,
                        dynamic=args.dynamic, opset=args.opset)
    print(f'wrote {out}: {task}, input image {"N" if args.dynamic else 1}'
          f'x{channels}x{"H" if args.dynamic else shape[0]}x'
          f'{"W" if args.dynamic else shape[1]}, outputs {", ".join(names)}')
    if not args.verify:
        return 0
    shapes = [shape]
    if args.dynamic:
        extra = tuple(args.verify_shape or second_shape(shape, divisor))
        check_shape(extra, divisor)
        shapes.append(extra)
    rows = verify(module, out, shapes, channels)
    for r in rows:
        print(f'verify {r["shape"][0]}x{r["shape"][1]} {r["output"]} '
              f'{r["out_shape"]}: max relative error {r["rel_err"]:.2e} '
              f'{"ok" if r["ok"] else "FAILED"}')
    bad = [r for r in rows if not r['ok']]
    if bad:
        raise VerificationError(
            f'{out}: onnxruntime differs from PyTorch by more than 1e-4 '
            f'(relative) on {len(bad)} output(s), e.g. {bad[0]["output"]} '
            f'at {bad[0]["shape"]}: {bad[0]["rel_err"]:.2e}. Export without '
            '--dynamic or at the size you will run, and report the model.')
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli('export.py', lambda: export(args), debug=args.debug,
                   exit=False)


if __name__ == '__main__':
    sys.exit(main())
