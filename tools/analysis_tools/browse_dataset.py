"""Save PNG grids of what a config's data pipeline feeds the model.

    python tools/analysis_tools/browse_dataset.py CONFIG --output-dir DIR
        [--phase train|val|test] [-n 16] [--cols 4] [--tile-size 320]
        [--shuffle] [--seed 0] [--channel-order BGR] [--cfg-options k=v ...]

Each sample goes through the dataset's pipeline (augmentation included) and
is drawn by the visualizer of the config's library, chosen by
``default_scope``: mmpretrain's ``UniversalVisualizer`` (the label), mmdet's
``DetLocalVisualizer`` (boxes and masks) or mmseg's ``SegLocalVisualizer``
(the segmentation map). Tiles are laid out ``--cols`` wide, ``cols x cols``
per PNG: ``DIR/{phase}_grid_000.png``, ... A multi-view pipeline (DINO's
``MultiView`` crops) draws each sample as a row of its views, ``--cols``
rows per PNG.

What is not shown: batch augmentations that the data preprocessor applies
to whole batches (Mixup / CutMix in the classification configs), and the
normalisation. ``--seed`` fixes the random augmentation so that two runs draw
the same pictures.
"""
import argparse
import math
import os
import os.path as osp
import random
import sys
from typing import List

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DATASETS, VISUALIZERS, init_default_scope

from xcit_mm.cli import add_config_args, load_config, run_cli
from xcit_mm.utils.errors import ConfigError

SCOPES = ('mmpretrain', 'mmdet', 'mmseg')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Save grids of the data pipeline output')
    add_config_args(parser)
    parser.add_argument('--output-dir', '-o', required=True,
                        help='where to write the PNG grids')
    parser.add_argument('--phase', '-p', default='train',
                        choices=['train', 'val', 'test'],
                        help='which dataloader\'s dataset (default train)')
    parser.add_argument('--show-number', '-n', type=int, default=16,
                        help='samples to draw (default 16)')
    parser.add_argument('--cols', type=int, default=4,
                        help='tiles per row; a PNG holds cols x cols tiles')
    parser.add_argument('--tile-size', type=int, default=320,
                        help='each tile fits in a square of this size (px)')
    parser.add_argument('--shuffle', action='store_true',
                        help='draw random samples instead of the first ones')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the sample choice and the random '
                        'augmentation')
    parser.add_argument('--channel-order', default='BGR',
                        choices=['BGR', 'RGB'],
                        help='channel order of the pipeline output (BGR '
                        'for the default LoadImageFromFile)')
    return parser.parse_args(argv)


def to_rgb(inputs: torch.Tensor, channel_order: str) -> np.ndarray:
    """(3, H, W) pipeline output -> (H, W, 3) uint8 RGB."""
    img = inputs.detach().cpu().permute(1, 2, 0).numpy()  # (H, W, 3)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if channel_order == 'BGR':
        img = img[..., ::-1]
    return np.ascontiguousarray(img)


def draw_sample(scope: str, visualizer, item: dict, index: int,
                channel_order: str, tile_size: int) -> np.ndarray:
    """Draw one pipeline output with its ground truth, through the library's
    own visualizer. Returns an RGB image."""
    img = to_rgb(item['inputs'], channel_order)
    sample = item['data_samples']
    if scope == 'mmpretrain':
        return visualizer.visualize_cls(
            img, sample, classes=visualizer.dataset_meta.get('classes'),
            draw_pred=False, resize=max(tile_size, min(img.shape[:2])))
    if scope == 'mmdet':
        from mmdet.models.utils import mask2ndarray
        from mmdet.structures.bbox import BaseBoxes
        sample = sample.numpy()
        gt = sample.gt_instances
        if isinstance(gt.get('bboxes', None), BaseBoxes):
            gt.bboxes = gt.bboxes.tensor
        if gt.get('masks', None) is not None:
            gt.masks = mask2ndarray(gt.masks).astype(bool)
        sample.gt_instances = gt
    visualizer.add_datasample(f'sample_{index}', img, sample, draw_gt=True,
                              draw_pred=False, show=False)
    return visualizer.get_image()


def fit_tile(img: np.ndarray, size: int) -> np.ndarray:
    """Resize (keeping the aspect ratio) and pad with white to size x size."""
    h, w = img.shape[:2]
    scale = size / max(h, w)
    img = mmcv.imresize(img, (max(1, round(w * scale)),
                              max(1, round(h * scale))))
    tile = np.full((size, size, 3), 255, dtype=np.uint8)
    tile[:img.shape[0], :img.shape[1]] = img
    return tile


def make_grid(tiles: List[np.ndarray], cols: int, gap: int = 4
              ) -> np.ndarray:
    """Lay same-size tiles out in rows of ``cols`` on a white canvas."""
    size = tiles[0].shape[0]
    rows = math.ceil(len(tiles) / cols)
    width = min(cols, len(tiles))
    grid = np.full((rows * size + (rows - 1) * gap,
                    width * size + (width - 1) * gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = r * (size + gap), c * (size + gap)
        grid[y:y + size, x:x + size] = tile
    return grid


def build_visualizer(cfg: Config, dataset):
    vis_cfg = cfg.get('visualizer')
    if vis_cfg is None:
        raise ConfigError('The config has no `visualizer`; add the one of '
                         'its library (UniversalVisualizer, '
                         'DetLocalVisualizer or SegLocalVisualizer).')
    vis_cfg = vis_cfg.copy()
    # Draw in memory only: no backend writes anything.
    vis_cfg['vis_backends'] = None
    vis_cfg['name'] = f'browse_dataset_{id(dataset)}'
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    return visualizer


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli('browse_dataset.py', lambda: browse(args),
                   debug=args.debug, exit=False)


def browse(args) -> int:
    cfg = load_config(args)
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ConfigError(
            f'default_scope {scope!r} is not one of {SCOPES}; this tool '
            'draws through their visualizers.')
    init_default_scope(scope)
    loader = cfg.get(f'{args.phase}_dataloader')
    if not loader:
        raise ConfigError(f'The config has no {args.phase}_dataloader.')
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dataset = DATASETS.build(loader['dataset'])
    visualizer = build_visualizer(cfg, dataset)

    os.makedirs(args.output_dir, exist_ok=True)
    number = min(args.show_number, len(dataset))
    indices = (np.random.permutation(len(dataset))[:number].tolist()
               if args.shuffle else range(number))
    cols, per_grid = args.cols, args.cols * args.cols
    tiles, written = [], []
    for i, index in enumerate(indices):
        item = dataset[index]
        views = item['inputs']
        if isinstance(views, (list, tuple)):
            # a multi-view pipeline (DINO's crops): one row per sample, one
            # tile per view, `--cols` rows per PNG
            cols, per_grid = len(views), len(views) * args.cols
        else:
            views = [views]
        for view in views:
            tiles.append(fit_tile(
                draw_sample(scope, visualizer, dict(item, inputs=view),
                            index, args.channel_order, args.tile_size),
                args.tile_size))
        if len(tiles) >= per_grid or i == number - 1:
            path = osp.join(args.output_dir,
                            f'{args.phase}_grid_{len(written):03d}.png')
            grid = make_grid(tiles, cols)
            mmcv.imwrite(grid[..., ::-1], path)  # RGB -> BGR
            written.append(path)
            tiles = []
    print(f'drew {number} of {len(dataset)} {args.phase} samples '
          f'({scope}) into {len(written)} grid(s): '
          + ', '.join(written))
    return 0


if __name__ == '__main__':
    sys.exit(main())
