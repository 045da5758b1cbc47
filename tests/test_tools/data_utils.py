"""Tiny synthetic data and configs for the tool tests (generated in tmp).

Kept out of conftest.py so that other test modules' helpers don't collide.
"""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Tuple

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: mean / std shared by the tiny configs.
NORM = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])


def load_tool(relpath: str):
    """Import a tool script (``tools/...py``) as a module, to call main()."""
    path = osp.join(REPO, relpath)
    name = 'tool_' + osp.splitext(relpath)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(relpath: str, *args: str, timeout: int = 300
             ) -> subprocess.CompletedProcess:
    """Run a tool as users do: ``python tools/... args`` from the repo."""
    env = dict(os.environ, PYTHONPATH=REPO)
    # tiny models: one thread avoids oversubscribing a shared CPU
    env.setdefault('OMP_NUM_THREADS', '1')
    return subprocess.run([sys.executable, osp.join(REPO, relpath), *args],
                          cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _shapes_image(rng, size: int) -> Tuple[np.ndarray, list]:
    """Noise with one square and one disk; returns (BGR image, objects)."""
    import cv2
    img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    objects = []
    s = size // 3
    x, y = (int(v) for v in rng.integers(0, size - s, 2))
    cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), (40, 40, 220), -1)
    objects.append(('square', [(x, y), (x + s - 1, y), (x + s - 1, y + s - 1),
                               (x, y + s - 1)]))
    r = size // 6
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    cv2.circle(img, (cx, cy), r, (220, 200, 30), -1)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    objects.append(('disk', [(cx + r * np.cos(a), cy + r * np.sin(a))
                             for a in angles]))
    return img, objects


def make_coco(root: str, num_images: int = 4, size: int = 64,
              seed: int = 0) -> str:
    """COCO-style instance data: root/images/*.png + root/ann.json with
    boxes and polygon masks of two classes (square, disk)."""
    import cv2
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    cats = [dict(id=1, name='square'), dict(id=2, name='disk')]
    cat_id = {c['name']: c['id'] for c in cats}
    images, anns = [], []
    for i in range(num_images):
        img, objects = _shapes_image(rng, size)
        name = f'{i}.png'
        cv2.imwrite(osp.join(root, 'images', name), img)
        images.append(dict(id=i + 1, file_name=name, height=size,
                           width=size))
        for label, poly in objects:
            poly = np.asarray(poly, dtype=float)
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0)
            anns.append(dict(
                id=len(anns) + 1, image_id=i + 1,
                category_id=cat_id[label], iscrowd=0,
                bbox=[x0, y0, x1 - x0, y1 - y0],
                area=float((x1 - x0) * (y1 - y0)),
                segmentation=[poly.ravel().tolist()]))
    with open(osp.join(root, 'ann.json'), 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    return root


def make_ade(root: str, num_images: int = 4, size: int = 64,
             seed: int = 0) -> str:
    """ADE20k-style data: root/images/training/*.jpg and
    root/annotations/training/*.png (0 = ignore, ADE labels 1..150)."""
    import cv2
    rng = np.random.default_rng(seed)
    img_dir = osp.join(root, 'images', 'training')
    ann_dir = osp.join(root, 'annotations', 'training')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(num_images):
        img, objects = _shapes_image(rng, size)
        seg = np.full((size, size), 1, np.uint8)  # ADE "wall" background
        for label, poly in objects:
            value = 13 if label == 'square' else 21  # ADE person / car
            cv2.fillPoly(seg, [np.round(poly).astype(np.int32)], value)
        seg[:2] = 0  # a strip of "other" (ignored) pixels
        cv2.imwrite(osp.join(img_dir, f'ADE_train_{i:08d}.jpg'), img)
        cv2.imwrite(osp.join(ann_dir, f'ADE_train_{i:08d}.png'), seg)
    return root


def write_config(path: str, text: str) -> str:
    with open(path, 'w') as f:
        f.write(text)
    return path


def cls_config(data_root: str, work_dir: str = None, epochs: int = 2,
               tiny_size: int = 32, iters: int = None) -> str:
    """A tiny mmpretrain classifier config (XCiT 32-d, 2 blocks, p8).

    Epoch-based (``epochs``), or iteration-based like the mmseg configs
    when ``iters`` is given (validation every ``iters // 2``).
    """
    if iters:
        loop = (f'train_cfg = dict(by_epoch=False, max_iters={iters}, '
                f'val_interval={iters // 2})\n'
                'log_processor = dict(by_epoch=False)\n'
                f'checkpoint = dict(type="CheckpointHook", by_epoch=False, '
                f'interval={iters // 2})')
    else:
        loop = (f'train_cfg = dict(by_epoch=True, max_epochs={epochs}, '
                'val_interval=1)\n'
                'checkpoint = dict(type="CheckpointHook", interval=1)')
    return f'''
default_scope = 'mmpretrain'
work_dir = {work_dir!r}
model = dict(
    type='ImageClassifier',
    backbone=dict(type='xcit_mm.XCiT',
                  arch=dict(embed_dims=32, depth=2, num_heads=2),
                  patch_size=8),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=2, in_channels=32,
              loss=dict(type='CrossEntropyLoss'), topk=(1, )))
data_preprocessor = dict(num_classes=2, to_rgb=True, **{NORM!r})
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale={tiny_size}),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale={tiny_size}, edge='short'),
    dict(type='CenterCrop', crop_size={tiny_size}),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root={data_root!r},
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CustomDataset', data_root={data_root!r},
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
{loop}
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=checkpoint,
    visualization=dict(type='VisualizationHook', enable=False))
visualizer = dict(type='UniversalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')])
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
'''


def det_config(data_root: str, size: int = 64) -> str:
    """A data-only mmdet config: COCO instances, fixed-size pipeline."""
    return f'''
default_scope = 'mmdet'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=({2 * size}, {2 * size}), keep_ratio=False),
    dict(type='RandomFlip', prob=0.0),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0,
    dataset=dict(type='CocoDataset', data_root={data_root!r},
                 ann_file='ann.json', data_prefix=dict(img='images/'),
                 metainfo=dict(classes=('square', 'disk')),
                 filter_cfg=dict(filter_empty_gt=True),
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
visualizer = dict(type='DetLocalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')])
'''


def seg_config(data_root: str, size: int = 64) -> str:
    """A data-only mmseg config: ADE20k layout, fixed-size pipeline."""
    return f'''
default_scope = 'mmseg'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=({2 * size}, {2 * size}), keep_ratio=False),
    dict(type='RandomFlip', prob=0.0),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0,
    dataset=dict(type='ADE20KDataset', data_root={data_root!r},
                 data_prefix=dict(img_path='images/training',
                                  seg_map_path='annotations/training'),
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
visualizer = dict(type='SegLocalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')])
'''
