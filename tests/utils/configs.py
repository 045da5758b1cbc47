"""Tiny configs for the tests, and a cached config loader."""
import contextlib
import functools
from typing import Union

from tests.utils.data import _hw
from tests.utils.tools import REPO  # noqa: F401


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
