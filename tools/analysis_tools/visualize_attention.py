"""Draw XCiT's attention maps for one image.

    python tools/analysis_tools/visualize_attention.py CONFIG CHECKPOINT IMAGE
        --out-dir DIR [--layers 0 -1] [--img-size N] [--alpha 0.5]
        [--checkpoint-key student] [--cfg-options k=v ...]

CONFIG gives the architecture (any classification, detection or segmentation
config with an XCiT backbone) and the input normalisation. CHECKPOINT is any
XCiT checkpoint: an xcit_mm classifier, detector or segmentor, a file from
``tools/model_converters/xcit2mm.py`` (with or without ``--backbone-only``),
or an official, timm or DINO file read directly (converted on the fly). The
image's short side is resized to ``--img-size`` (default: the short side of
the config's own input size, :func:`xcit_mm.utils.flops.config_input_shape`:
the test crop of a classification config, the global crop of a DINO
config, 32 px for the digits demos) and cropped to whole patches;
a 1-channel XCiT (``in_channels=1``, e.g. the digits demo) gets the image's
luma, as ``color_type='grayscale'`` loading gives it.

Writes to DIR:

- ``input.png``: the resized image the model saw;
- ``cls_attn_head{i}.png``, ``cls_attn_mean.png``: the last class-attention
  block's attention of the class token over the patches, per head and
  averaged, overlaid on the image (same size as ``input.png``);
- ``cls_attn_grid.png``: all of them in one labelled picture;
- ``xca_block{i}.png``: the (d x d) XCA channel-attention matrices of each
  block in ``--layers``, one heat map per head;
- ``attention.npz``: the raw arrays (``cls_attn`` (h, Hp, Wp),
  ``xca_block{i}`` (h, d, d), ``image``).

Checkpoints without class-attention weights (dense or ``--backbone-only``)
give the XCA maps only, and the tool says so. DINO backbones keep their
class-attention blocks, so they give both, without a head. Of a DINO
training checkpoint (official, or ``epoch_N.pth`` of an xcit_mm DINO run)
the teacher is drawn, as DINO evaluates it (``--checkpoint-key student``
for the student), and the tool says which.

CrossFormer is not supported: it has neither a class token nor channel
attention, and its attention weights live inside groups (SDA / LDA), so
these pictures do not exist for it. The tool says so and exits with status
1; ``xcit_mm.CrossFormer.get_attention_maps(x)`` returns every block's group
attention weights with their layout, for plots of one's own.
"""
import argparse
import os
import os.path as osp
import sys

import mmcv
import numpy as np

from xcit_mm.cli import add_config_args, load_config, run_cli
from xcit_mm.utils.errors import ConfigError
from xcit_mm.utils.flops import config_input_shape
from xcit_mm.utils.state_dict import dino_choice
from xcit_mm.visualization.attention import (
    build_xcit_from_checkpoint,
    compute_attention,
    draw_cls_attention_grid,
    draw_xca_matrices,
    load_image,
    normalization_from_cfg,
    overlay,
    resolve_layers,
    to_input,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the class-attention and XCA channel-attention maps '
        'of an XCiT for one image')
    add_config_args(parser)
    parser.add_argument('checkpoint', help='XCiT checkpoint (xcit_mm, '
                        'converted, official, timm or DINO)')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out-dir', required=True, help='output directory')
    parser.add_argument('--layers', type=int, nargs='*', default=[-1],
                        help='XCA blocks whose channel attention to draw; '
                        'negative counts from the end (default: -1, the '
                        'last block; none: --layers with no value)')
    parser.add_argument('--img-size', type=int, default=None,
                        help='short side of the image fed to the model '
                        "(default: the config's own input size, e.g. 224 "
                        'for ImageNet, 32 for the digits demos)')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='opacity of the heat map over the image')
    parser.add_argument('--checkpoint-key', default=None,
                        help='wrapper entry of the checkpoint to read, e.g. '
                        'student for the student of a DINO training '
                        'checkpoint (default: state_dict, model, model_ema '
                        'or the raw dict; the teacher of a DINO training '
                        'checkpoint)')
    return parser.parse_args(argv)


def save_rgb(img: np.ndarray, path: str) -> str:
    mmcv.imwrite(np.ascontiguousarray(img[..., ::-1]), path)  # RGB -> BGR
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli('visualize_attention.py', lambda: visualize(args),
                   debug=args.debug, exit=False)


def visualize(args) -> int:
    cfg = load_config(args)
    if 'CrossFormer' in str(cfg.model.get('backbone', {}).get('type', '')):
        raise ConfigError(
            "This tool draws XCiT's class attention and XCA channel-attention "
            'maps, which CrossFormer does not have (its attention is computed '
            'inside SDA / LDA groups). Use '
            'xcit_mm.CrossFormer.get_attention_maps(images) for the group '
            'attention weights of every block.')
    model, info = build_xcit_from_checkpoint(cfg, args.checkpoint,
                                             args.checkpoint_key)
    layers = resolve_layers(args.layers, model.depth)
    img_size = args.img_size or min(config_input_shape(cfg)[1:])
    img = load_image(args.image, img_size, model.patch_size)
    mean, std = normalization_from_cfg(cfg)
    attn = compute_attention(
        model, to_input(img, mean, std, model.in_channels), layers)
    Hp, Wp = attn['grid']
    print(f'checkpoint: {info["format"]} format, class attention: '
          f'{"yes" if info["class_attention"] else "no"}, head: '
          + (f'{info["num_classes"]} classes'
             if info['num_classes'] else 'none'))
    note = dino_choice(info['format'], '--checkpoint-key')
    if note:
        print(note)
    print(f'input {img.shape[1]}x{img.shape[0]} -> {Wp}x{Hp} patches of '
          f'{model.patch_size} px, {model.num_heads} heads')

    os.makedirs(args.out_dir, exist_ok=True)
    written = [save_rgb(img, osp.join(args.out_dir, 'input.png'))]
    arrays = dict(image=img)
    if 'cls_attn' in attn:
        cls_attn = attn['cls_attn']  # (h, Hp, Wp)
        arrays['cls_attn'] = cls_attn
        for i, a in enumerate(cls_attn):
            written.append(save_rgb(
                overlay(img, a, args.alpha),
                osp.join(args.out_dir, f'cls_attn_head{i}.png')))
        written.append(save_rgb(
            overlay(img, cls_attn.mean(0), args.alpha),
            osp.join(args.out_dir, 'cls_attn_mean.png')))
        written.append(save_rgb(
            draw_cls_attention_grid(img, cls_attn, args.alpha),
            osp.join(args.out_dir, 'cls_attn_grid.png')))
    else:
        print('This checkpoint has no class-attention weights (a dense or '
              '--backbone-only checkpoint): writing the XCA channel-'
              'attention maps only.')
    for i, a in attn['xca'].items():
        arrays[f'xca_block{i}'] = a
        written.append(save_rgb(
            draw_xca_matrices(a, i),
            osp.join(args.out_dir, f'xca_block{i}.png')))
    np.savez_compressed(osp.join(args.out_dir, 'attention.npz'), **arrays)
    written.append(osp.join(args.out_dir, 'attention.npz'))
    print('wrote ' + ', '.join(osp.basename(p) for p in written) +
          f' to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
