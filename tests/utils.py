"""The one home of the xcit_mm tests' shared helpers (pytest fixtures live in
``tests/conftest.py``, which imports from here).

Public names (stable; import them as ``from tests.utils import ...``):

Running the tools
    ``REPO``: the repository root.
    ``run_tool(args, timeout=300, cwd=REPO, **env) -> CompletedProcess``:
        ``python tools/...`` (or ``bash tools/...sh``) as a user runs it, in a
        child process from ``cwd`` with :func:`tool_env` (``PYTHONPATH=REPO``
        first, ``OMP_NUM_THREADS=1``, ``PYTHON`` = this interpreter); ``env``
        entries override or add environment variables. Output is captured
        as text; the exit status is not checked.
    ``tool_env(**extra) -> dict``: that environment, for a ``Popen``.
    ``explain(proc) -> str``: exit status and the tails of stdout / stderr,
        the message for ``assert proc.returncode == 0, explain(proc)``.
    ``load_tool(relpath)``: import a tool script (``'tools/train.py'``) as a
        fresh module, to call its ``main(argv)`` in-process.
    ``free_port()``: a free TCP port on 127.0.0.1 (for ``dist_*.sh``).

Configs
    ``load_config(path)``: ``Config.fromfile`` with
        :func:`cached_mim_metafiles` (resolving ``mmdet::`` / ``mmseg::``
        bases reads each installed metafile once per test session).
    ``cached_mim_metafiles()``: that cache as a context manager.
    ``write_config(path, cfg)``: write a config file from text or a dict.
    ``cls_config`` / ``det_config`` / ``seg_config``: tiny config texts
        (a trainable classifier; data-only mmdet / mmseg configs on
        :func:`make_coco` / :func:`make_ade` data).
    ``tiny_dense_config(config, ...)``: a real det / seg config made cheap.
    ``tiny_teacher_cfg(num_classes)``: a ~0.4M-parameter timm teacher.

Synthetic data (random, seeded, written under the given root)
    ``make_image_folder(root, num_classes=2, per_class=4, size=32, seed=0)``
    ``make_split_folders(root, ...)``: ``root/{train,val}/class_i/*.png``.
    ``make_coco(root, num_images=4, num_val=2, size=(64, 80), seed=0)``:
        COCO 2017 layout with boxes and polygon masks.
    ``make_ade(root, num_images=4, num_val=2, size=(96, 128), seed=0)``:
        ADEChallengeData2016 layout with label maps.

Models
    ``ARCHS``, ``timm_name``: the 7 official sizes and their timm names.
    ``TINY_ARCH``, ``TINY_DENSE_BACKBONE``: tiny architectures for tests.
    ``randomize_(model, seed=0)``: random weights and BN statistics.
    ``relative_error(a, b)``.
    ``convert_tiny_timm_backbone(dst, patch_size=16, seed=0)``: a
        ``--backbone-only`` file made by ``tools/model_converters/xcit2mm.py``.

Checkpoints
    ``RunsCode(marker)``: an object whose unpickling runs ``touch marker``
        (the classic malicious checkpoint content).
"""
import contextlib
import functools
import importlib.util
import json
import os
import os.path as osp
import socket
import subprocess
import sys
from typing import List, Union

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


# --------------------------------------------------------------------------
# Running the tools

def tool_env(**extra) -> dict:
    """The environment of a tool run: this one with ``PYTHONPATH=REPO``
    first (this checkout shadows any installed xcit_mm),
    ``OMP_NUM_THREADS=1`` (tiny models gain nothing from more threads, and
    on a busy machine spinning OpenMP threads make a step many times
    slower) and ``PYTHON`` = this interpreter (``tools/dist_*.sh`` start
    ``$PYTHON``, and CI does not activate the venv); ``extra`` overrides
    or adds variables."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                  if p])
    env['OMP_NUM_THREADS'] = '1'
    env['PYTHON'] = sys.executable
    env.update(extra)
    return env


def run_tool(args: List[str], timeout: int = 300, cwd: str = REPO,
             **env) -> subprocess.CompletedProcess:
    """``python tools/... args`` (or ``bash tools/...sh args``) as a user
    runs it, in a child process with :func:`tool_env` (``env`` overrides or
    adds variables). A relative ``*.py`` first argument is resolved against
    REPO, so ``cwd`` may be elsewhere; other first arguments (``-c CODE``,
    ``-m MODULE``) go to the interpreter as they are. Output is captured as
    text; the exit status is not checked (``assert proc.returncode == 0,
    explain(proc)``)."""
    args = list(args)
    if args[0] == 'bash':
        cmd = args
    else:
        if args[0].endswith('.py'):
            args[0] = osp.join(REPO, args[0])
        cmd = [sys.executable, *args]
    return subprocess.run(cmd, cwd=cwd, env=tool_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def explain(proc: subprocess.CompletedProcess) -> str:
    """The exit status and the tails of stdout and stderr."""
    return (f'rc={proc.returncode}\n{proc.stdout[-3000:]}\n'
            f'{proc.stderr[-3000:]}')


def load_tool(relpath: str):
    """Import a tool script (``tools/...py``, relative to REPO) as a fresh
    module, to call its ``main(argv)`` in the test process."""
    name = 'tool_' + osp.splitext(relpath)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name,
                                                  osp.join(REPO, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Configs

@contextlib.contextmanager
def cached_mim_metafiles():
    """Read each ``metafile.yml`` of mmdet / mmseg once per test session.

    Resolving an ``mmdet::`` / ``mmseg::`` base makes mmengine read the
    package's ~100 ``metafile.yml`` (about 0.5 s) for every such base of
    every config; inside this context each file is read once. Nothing else
    changes.
    """
    import mmengine.config.utils
    original = mmengine.config.utils.load

    def load(path, *args, **kwargs):
        if args or kwargs or not isinstance(path, str):
            return original(path, *args, **kwargs)
        return _cached_load(path)

    mmengine.config.utils.load = load
    try:
        yield
    finally:
        mmengine.config.utils.load = original


@functools.lru_cache(maxsize=None)
def _cached_load(path: str):
    from mmengine.fileio import load
    return load(path)


def load_config(path: str):
    """``Config.fromfile`` with :func:`cached_mim_metafiles`."""
    from mmengine.config import Config
    with cached_mim_metafiles():
        return Config.fromfile(path)


def write_config(path: str, cfg: Union[str, dict]) -> str:
    """Write a config file: ``cfg`` is its text, or a dict whose items
    become ``key = repr(value)`` lines. Returns ``path``."""
    with open(path, 'w') as f:
        if isinstance(cfg, str):
            f.write(cfg)
        else:
            for k, v in cfg.items():
                f.write(f'{k} = {v!r}\n')
    return str(path)


def tiny_teacher_cfg(num_classes: int) -> dict:
    """A tiny distillation teacher: timm's test_resnet (~0.4M parameters)
    through mmpretrain's TimmClassifier, like the default RegNetY teacher."""
    return dict(type='TimmClassifier', model_name='test_resnet',
                num_classes=num_classes, pretrained=False)


#: mean / std shared by the tiny configs.
NORM = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])


def cls_config(data_root: str, work_dir: str = None, epochs: int = 2,
               tiny_size: int = 32, iters: int = None) -> str:
    """A tiny mmpretrain classifier config (XCiT 32-d, 2 blocks, p8) on an
    image folder (:func:`make_image_folder`).

    Epoch-based (``epochs``), or iteration-based like the mmseg configs
    when ``iters`` is given (validation every ``iters // 2``).
    """
    if iters:
        loop = ('train_cfg = dict(type="xcit_mm.ResumableIterBasedTrainLoop",'
                f' max_iters={iters}, val_interval={iters // 2})\n'
                'log_processor = dict(by_epoch=False)\n'
                'checkpoint = dict(type="xcit_mm.AtomicCheckpointHook", '
                f'by_epoch=False, interval={iters // 2})')
    else:
        loop = ('train_cfg = dict(type="xcit_mm.ResumableEpochBasedTrainLoop",'
                f' max_epochs={epochs}, val_interval=1)\n'
                'checkpoint = dict(type="xcit_mm.AtomicCheckpointHook", '
                'interval=1)')
    return f'''
default_scope = 'mmpretrain'
runner_type = 'xcit_mm.Runner'
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
    dict(type='xcit_mm.LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale={tiny_size}),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='xcit_mm.LoadImageFromFile'),
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
    visualization=dict(type='VisualizationHook', enable=False),
    nonfinite_loss=dict(type='xcit_mm.NonFiniteLossHook', action='stop'),
    checkpoint_match=dict(type='xcit_mm.CheckpointMatchHook',
                          mode='finetune'))
visualizer = dict(type='UniversalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')])
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
'''


def det_config(data_root: str, size=(64, 80)) -> str:
    """A data-only mmdet config on :func:`make_coco` data (its training
    split, COCO classes): images resized to twice ``size`` (h, w), no
    flip."""
    h, w = _hw(size)
    return f'''
default_scope = 'mmdet'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=({2 * w}, {2 * h}), keep_ratio=False),
    dict(type='RandomFlip', prob=0.0),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0,
    dataset=dict(type='CocoDataset', data_root={data_root!r},
                 ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/'),
                 filter_cfg=dict(filter_empty_gt=True),
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
visualizer = dict(type='DetLocalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')])
'''


def seg_config(data_root: str, size=(96, 128)) -> str:
    """A data-only mmseg config on :func:`make_ade` data (its training
    split): images resized to twice ``size`` (h, w), no flip."""
    h, w = _hw(size)
    return f'''
default_scope = 'mmseg'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=({2 * w}, {2 * h}), keep_ratio=False),
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


# --------------------------------------------------------------------------
# Synthetic data

def make_image_folder(root: str, num_classes: int = 2, per_class: int = 4,
                      size: int = 32, seed: int = 0) -> str:
    """ImageNet-style folder (root/class_i/*.png) of random images whose
    class is visible in the mean colour."""
    import cv2
    rng = np.random.default_rng(seed)
    for c in range(num_classes):
        d = osp.join(root, f'class_{c}')
        os.makedirs(d, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            img[..., c % 3] += np.uint8(120)
            cv2.imwrite(osp.join(d, f'{i}.png'), img)
    return root


def make_split_folders(root: str, num_classes: int = 2, per_class: int = 4,
                       size: int = 32) -> str:
    """root/{train,val}/class_i/*.png (an ImageNet-style split)."""
    make_image_folder(osp.join(root, 'train'), num_classes, per_class, size,
                      seed=0)
    make_image_folder(osp.join(root, 'val'), num_classes, per_class, size,
                      seed=1)
    return root


def _hw(size) -> tuple:
    """An int or (h, w) -> (h, w)."""
    return (size, size) if isinstance(size, int) else tuple(size)


def _random_shapes(rng, h: int, w: int, n: int):
    """n random (x0, y0, x1, y1) boxes of at least 12 px inside h x w."""
    boxes = []
    for _ in range(n):
        bw, bh = rng.integers(12, w // 2), rng.integers(12, h // 2)
        x0, y0 = rng.integers(0, w - bw), rng.integers(0, h - bh)
        boxes.append((int(x0), int(y0), int(x0 + bw), int(y0 + bh)))
    return boxes


def make_coco(root: str, num_images: int = 4, num_val: int = 2,
              size=(64, 80), seed: int = 0) -> str:
    """COCO 2017 layout (train2017/, val2017/, annotations/instances_*.json)
    of random ``size`` (an int or (h, w)) JPEG images, ``num_images`` for
    training and ``num_val`` for validation, each with 1 to 3 filled
    rectangles and triangles, annotated with a box and a polygon mask
    (categories 1 to 3: person, bicycle, car). The json lists mmdet's 80
    COCO classes, as the real file does. Returns ``root``."""
    import cv2
    from mmdet.datasets import CocoDataset
    rng = np.random.default_rng(seed)
    h, w = _hw(size)
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(
        CocoDataset.METAINFO['classes'])]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    for split, n in (('train2017', num_images), ('val2017', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, anns = [], []
        for i in range(n):
            img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            for j, (x0, y0, x1, y1) in enumerate(
                    _random_shapes(rng, h, w, int(rng.integers(1, 4)))):
                if j % 2:  # triangle
                    poly = [x0, y1, x1, y1, (x0 + x1) / 2, y0]
                else:
                    poly = [x0, y0, x1, y0, x1, y1, x0, y1]
                pts = np.array(poly, np.float32).reshape(-1, 2)
                cv2.fillPoly(img, [pts.round().astype(np.int32)],
                             (60 + 90 * j, 200, 255 - 60 * j))
                xs, ys = pts[:, 0], pts[:, 1]
                anns.append(dict(
                    id=len(anns) + 1, image_id=i + 1,
                    category_id=1 + j % 3,
                    bbox=[float(xs.min()), float(ys.min()),
                          float(xs.max() - xs.min()),
                          float(ys.max() - ys.min())],
                    area=float(cv2.contourArea(pts)),
                    segmentation=[[float(v) for v in poly]], iscrowd=0))
            name = f'{i:012d}.jpg'
            cv2.imwrite(osp.join(root, split, name), img)
            images.append(dict(id=i + 1, file_name=name, height=h, width=w))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'),
                  'w') as f:
            json.dump(dict(images=images, annotations=anns,
                           categories=categories), f)
    return root


def make_ade(root: str, num_images: int = 4, num_val: int = 2,
             size=(96, 128), seed: int = 0) -> str:
    """ADEChallengeData2016 layout (images/{training,validation}/*.jpg,
    annotations/{training,validation}/*.png; ``num_images`` / ``num_val``
    of each, ``size`` an int or (h, w)): label maps in 0..150 (0 is
    'other', ignored by mmseg's reduce_zero_label; a 4-pixel strip at the
    top) on background class 3, with rectangles of classes 1, 2 and 150
    drawn in that order, also drawn into the image. Returns ``root``."""
    import cv2
    rng = np.random.default_rng(seed)
    h, w = _hw(size)
    for split, n in (('training', num_images), ('validation', num_val)):
        for sub in ('images', 'annotations'):
            os.makedirs(osp.join(root, sub, split), exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            label = np.full((h, w), 3, np.uint8)  # background class 3
            label[:4] = 0  # a strip of 'other'
            for j, (x0, y0, x1, y1) in enumerate(
                    _random_shapes(rng, h, w, 3)):
                cls = (1, 2, 150)[j]
                label[y0:y1, x0:x1] = cls
                img[y0:y1, x0:x1] = (40 * j, 120 + 40 * j, 200)
            name = f'ADE_{split[:5]}_{i:08d}'
            cv2.imwrite(osp.join(root, 'images', split, name + '.jpg'), img)
            cv2.imwrite(osp.join(root, 'annotations', split, name + '.png'),
                        label)
    return root


# --------------------------------------------------------------------------
# Models

#: (xcit_mm arch, timm name stem) for the 7 official sizes.
ARCHS = [('n12', 'nano_12'), ('t12', 'tiny_12'), ('t24', 'tiny_24'),
         ('s12', 'small_12'), ('s24', 'small_24'), ('m24', 'medium_24'),
         ('l24', 'large_24')]
#: A tiny architecture for fast tests.
TINY_ARCH = dict(embed_dims=32, depth=2, num_heads=2)
#: A tiny dense XCiT: 4 blocks, each one an output (the neck takes 4 maps).
TINY_DENSE_BACKBONE = dict(arch=dict(embed_dims=32, depth=4, num_heads=2),
                           out_indices=(0, 1, 2, 3))


def timm_name(stem: str, patch: int, size: int = 224) -> str:
    return f'xcit_{stem}_p{patch}_{size}'


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BN statistic random values.

    Default init hides bugs (layer scale 1e-5, temperature 1, BN identity),
    so parity is checked on weights where every part of the model matters.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if 'gamma' in name or 'temperature' in name:
            p.copy_(0.5 + torch.rand(p.shape, generator=g))
        else:
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape,
                                                   generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape,
                                                 generator=g))
    return model


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def convert_tiny_timm_backbone(dst: str, patch_size: int = 16,
                               seed: int = 0) -> dict:
    """Write a ``--backbone-only`` xcit_mm checkpoint, made by
    ``tools/model_converters/xcit2mm.py`` from a randomised timm XCiT of the
    :data:`TINY_DENSE_BACKBONE` arch.

    Returns:
        dict: The timm model's backbone tensors in xcit_mm names (class
        token, class attention and final norm included).
    """
    import timm.models.xcit

    from xcit_mm.models.backbones.xcit_convert import to_xcit_mm
    arch = TINY_DENSE_BACKBONE['arch']
    timm_model = randomize_(timm.models.xcit.Xcit(
        patch_size=patch_size, embed_dim=arch['embed_dims'],
        depth=arch['depth'], num_heads=arch['num_heads'], num_classes=10,
        tokens_norm=True), seed=seed)
    src = dst + '.timm.pth'
    torch.save(timm_model.state_dict(), src)
    if load_tool('tools/model_converters/xcit2mm.py').main(
            [src, dst, '--backbone-only']) != 0:
        raise RuntimeError(f'xcit2mm.py failed on {src}')
    os.remove(src)
    return to_xcit_mm(timm_model.state_dict())[0]


class RunsCode:
    """Unpickling this runs ``touch marker`` (os.system): saved with
    ``torch.save`` it makes a crafted, malicious checkpoint; the marker
    file tells whether it ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


# --------------------------------------------------------------------------
# Dense prediction configs

def _set_in_pipelines(cfg, fn) -> None:
    """Apply fn to every transform dict (nested ones included) of the
    train / val / test pipelines."""
    def visit(obj):
        if isinstance(obj, dict):
            fn(obj)
            for v in obj.values():
                visit(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                visit(v)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        visit(cfg[name].dataset.pipeline)


def tiny_dense_config(config: str, work_dir: str = None,
                      data_root: str = None, checkpoint: str = None,
                      shrink: int = 8, backbone: dict = None,
                      channel_map: dict = None):
    """A real dense config made cheap for a CPU test, structure unchanged.

    The backbone becomes :data:`TINY_DENSE_BACKBONE`; the neck and head
    widths shrink (those equal to the backbone's become 32, as do Mask
    R-CNN's 256-wide FPN and heads and UperNet's heads) and Mask R-CNN
    samples fewer RoIs. Image scales and crops are divided by ``shrink``, the
    data point at ``data_root``, training lasts 1 epoch (detection) or 2
    iterations (segmentation) with one evaluation at the end, and the data
    loaders use no worker processes.

    Args:
        config (str): A config under ``configs/``.
        work_dir (str, optional): The runner's work dir.
        data_root (str, optional): From :func:`make_coco` or
            :func:`make_ade`; None keeps the config's.
        checkpoint (str, optional): A ``--backbone-only`` converted file to
            initialise the backbone with; None trains from scratch.
        shrink (int): Divisor of image scales and crop sizes.
        backbone (dict, optional): Settings that make another backbone
            tiny, instead of :data:`TINY_DENSE_BACKBONE` for XCiT.
        channel_map (dict, optional): {old: new} widths of that backbone's
            outputs, applied to the neck and head inputs first.
    """
    from xcit_mm.models.backbones import resolve_arch
    cfg = load_config(config)
    is_det = cfg.default_scope == 'mmdet'
    model = cfg.model
    tiny = TINY_DENSE_BACKBONE['arch']['embed_dims']

    def narrow(obj, old: int, new: int):
        """Every *channels entry equal to old (or list entry) -> new."""
        if isinstance(obj, dict):
            for key, value in obj.items():
                if not key.endswith('channels'):
                    narrow(value, old, new)
                elif value == old:
                    obj[key] = new
                elif isinstance(value, (list, tuple)) and old in value:
                    obj[key] = [new if c == old else c for c in value]
        elif isinstance(obj, list):
            for o in obj:
                narrow(o, old, new)

    heads = [model.get(k) for k in ('neck', 'decode_head', 'auxiliary_head',
                                     'rpn_head', 'roi_head')]
    if backbone is None:
        channel_map = {resolve_arch(model.backbone.arch)['embed_dims']: tiny}
        backbone = TINY_DENSE_BACKBONE
    for old, new in channel_map.items():
        narrow(heads, old, new)
    model.backbone.update(backbone)
    model.backbone.init_cfg = None if checkpoint is None else dict(
        type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    if not is_det:  # UPerHead's 512 and the auxiliary FCNHead's 256
        narrow(heads, 512, 2 * tiny)
        narrow(heads, 256, tiny)
    if is_det:  # Mask R-CNN's 256-wide FPN and heads, 1024-wide box FCs
        narrow(heads, 256, tiny)
        narrow(heads, 1024, 2 * tiny)
        model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
        model.train_cfg.rcnn.sampler.num = 64
        model.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
        # an untrained head scores every class ~1/81: keep its boxes so the
        # COCO evaluation has detections to score
        model.test_cfg.rcnn.update(score_thr=0., max_per_img=20)

    def small(t):
        for key in ('scale', 'scales', 'crop_size'):
            if key in t:
                t[key] = _shrink_sizes(t[key], shrink)
    _set_in_pipelines(cfg, small)
    if not is_det:
        model.data_preprocessor.size = _shrink_sizes(
            model.data_preprocessor.size, shrink)

    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.num_workers = 0
        loader.persistent_workers = False
        if data_root is not None:
            loader.dataset.data_root = data_root
    cfg.train_dataloader.batch_size = 2
    if is_det:
        if data_root is not None:
            ann = osp.join(data_root, 'annotations',
                           'instances_val2017.json')
            cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = ann
        cfg.train_cfg.update(max_epochs=1, val_interval=1)
        cfg.default_hooks.checkpoint.interval = 1
    else:
        cfg.train_cfg.update(max_iters=2, val_interval=2)
        cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    if work_dir is not None:
        cfg.work_dir = work_dir
    return cfg


def _shrink_sizes(value, k: int):
    """(w, h), [(w, h), ...] -> the same with every side divided by k."""
    if isinstance(value, (list, tuple)) and value and isinstance(
            value[0], (list, tuple)):
        return [_shrink_sizes(v, k) for v in value]
    return tuple(max(16, int(v) // k) for v in value)
