"""xcit_mm checkpoints in the OpenMMLab inferencers.

The inferencers of mmpretrain (``ImageClassificationInferencer``,
``FeatureExtractor``), mmdet (``DetInferencer``) and mmseg
(``MMSegInferencer``) run xcit_mm's configs as they are. What they cannot
do by themselves, and this module adds:

- read a checkpoint saved by mmengine on torch >= 2.6: their loader calls
  ``torch.load`` with ``weights_only=True``, which refuses the message hub's
  objects. Here every checkpoint is read with
  :func:`xcit_mm.runtime.checkpoint.safe_load`'s allow-list and checked
  against the model (:func:`xcit_mm.utils.state_dict.load_checked`): a
  checkpoint of another model is an error, not silently random weights;
- tell mmpretrain's :func:`mmpretrain.inference_model` which task a model
  built from a config file solves (it knows only its own model zoo's names
  and otherwise says "No available inferencer for the model");
- extract DINO features with the frozen *teacher* backbone, from the
  config's evaluation pipeline (DINO configs have no ``test_dataloader``).

Images of 1-channel models (the digits demo) work because
``xcit_mm.LoadImageFromFile`` converts the colour arrays that the
inferencers decode to its ``color_type``.

Example::

    from xcit_mm.apis import get_inferencer
    inferencer = get_inferencer('configs/xcit/xcit-digits_demo.py',
                                'work_dirs/xcit-digits_demo/epoch_30.pth')
    print(inferencer('digit.png')[0]['pred_class'])
"""
import os.path as osp
from typing import Optional, Union

import torch
from mmengine.config import Config

from xcit_mm.runtime.checkpoint import safe_load, safe_loading
from xcit_mm.utils.errors import ConfigError, MissingFileError
from xcit_mm.utils.state_dict import load_checked

#: The tasks, named by the library that runs them.
TASKS = ('classification', 'features', 'detection', 'segmentation')
#: mmpretrain's task names (model-index ``Results.Task``), for
#: :func:`mmpretrain.inference_model`.
MMPRETRAIN_TASKS = dict(classification='Image Classification')
HINT = ('Use the config the checkpoint was trained with (the work_dir of a '
        'training run holds a copy of it).')


def load_cfg(config: Union[str, Config]) -> Config:
    """A config from a path (checked) or a :class:`Config` (copied)."""
    if isinstance(config, Config):
        return config.copy()
    if not osp.isfile(config):
        raise MissingFileError(
            f'The config file {config} does not exist (configs/ holds the '
            'shipped ones).')
    return Config.fromfile(config)


def task_of(cfg: Config) -> str:
    """One of :data:`TASKS`, from the config's scope and model type."""
    scope = cfg.get('default_scope', 'mmpretrain')
    if scope == 'mmdet':
        return 'detection'
    if scope == 'mmseg':
        return 'segmentation'
    if scope != 'mmpretrain' or 'model' not in cfg:
        raise ConfigError(
            f'Cannot tell what the model of this config does: default_scope '
            f'is {scope!r}, but inference supports mmpretrain, mmdet and '
            'mmseg configs with a `model`.', config_key='default_scope')
    from mmengine.registry import DefaultScope
    from mmpretrain.models import BaseSelfSupervisor
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model_cls = MODELS.get(cfg.model.type)
    if isinstance(model_cls, type) and issubclass(model_cls,
                                                  BaseSelfSupervisor):
        return 'features'
    return 'classification'


def read_checkpoint(checkpoint: str) -> dict:
    """The checkpoint as a dict, read with the allow-list."""
    ckpt = safe_load(checkpoint)
    return ckpt if isinstance(ckpt, dict) else {'state_dict': ckpt}


def _dataset_meta(ckpt: Optional[dict]) -> dict:
    meta = (ckpt or {}).get('meta') or {}
    if 'dataset_meta' in meta:
        return {k.lower(): v for k, v in meta['dataset_meta'].items()}
    if 'CLASSES' in meta:
        return {'classes': meta['CLASSES']}
    return {}


def _check_fit(model: torch.nn.Module, ckpt: dict, checkpoint: str) -> None:
    """A :class:`CheckpointMismatchError` unless ``ckpt`` fits ``model``."""
    load_checked(model, ckpt, what='the model of the config', hint=HINT,
                 source=checkpoint, load=False)


def _mmpretrain_metainfo(task: str, cfg: Config):
    """A model-index entry for a model built from a config file, with the
    task that :func:`mmpretrain.inference_model` dispatches on."""
    from modelindex.models.Model import Model
    from modelindex.models.Result import Result
    results = None
    if task in MMPRETRAIN_TASKS:
        results = [Result(task=MMPRETRAIN_TASKS[task], dataset='custom',
                          metrics={})]
    return Model(name=osp.splitext(osp.basename(cfg.filename or 'model'))[0],
                 results=results, config=cfg.filename)


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu') -> torch.nn.Module:
    """Build the model of an xcit_mm config and load a checkpoint.

    The model is what the task's library returns (``mmpretrain.get_model``,
    ``mmdet.apis.init_detector``, ``mmseg.apis.init_model``), in eval mode,
    with ``dataset_meta`` (class names) from the checkpoint, and usable with
    that library's inferencer, e.g.
    ``mmpretrain.ImageClassificationInferencer(model)`` or
    ``mmpretrain.inference_model(model, 'img.png')``.

    Args:
        config (str | Config): The config file (or a loaded config).
        checkpoint (str, optional): A checkpoint saved by training (the
            whole model, or its ``state_dict``). None keeps the initial
            weights.
        device (str | torch.device): Defaults to ``'cpu'``.

    Raises:
        MissingFileError, CheckpointError: a missing or unreadable file.
        CheckpointMismatchError: the checkpoint is not of this model.
    """
    cfg = load_cfg(config)
    task = task_of(cfg)
    ckpt = read_checkpoint(checkpoint) if checkpoint else None
    if task == 'detection':
        from mmdet.apis import init_detector
        model = init_detector(cfg, None, device='cpu')
    elif task == 'segmentation':
        from mmseg.apis import init_model as init_segmentor
        model = init_segmentor(cfg, None, device='cpu')
    else:
        from mmengine.registry import init_default_scope
        from mmpretrain.apis import get_model

        # the inferencers build their pipelines in the current scope (as
        # mmdet's init_detector and mmseg's init_model set theirs)
        init_default_scope('mmpretrain')
        model = get_model(cfg, pretrained=False, device='cpu')
        model._metainfo = _mmpretrain_metainfo(task, cfg)
    if ckpt is not None:
        load_checked(model, ckpt, what='the model of the config', hint=HINT,
                     source=checkpoint)
        meta = _dataset_meta(ckpt)
        if meta:
            model.dataset_meta = meta
            model._dataset_meta = meta  # where mmpretrain reads it
    return model.to(device).eval()


class _CheckedWeights:
    """For mmengine-based inferencers (mmdet, mmseg): read the weights with
    the allow-list and refuse a checkpoint that does not fit the model."""

    def __init__(self, model: Union[str, Config], weights: Optional[str],
                 *args, **kwargs) -> None:
        with safe_loading():
            super().__init__(load_cfg(model), weights, *args, **kwargs)

    def _get_transform_idx(self, pipeline_cfg, name) -> int:
        """Also finds xcit_mm's ``xcit_mm.LoadImageFromFile`` where the
        inferencer looks for ``LoadImageFromFile`` (to replace it by its
        loader of arrays and files). ``name``: a type or a tuple of them."""
        names = name if isinstance(name, tuple) else (name, )
        for i, transform in enumerate(pipeline_cfg):
            kind = transform['type']
            if kind in names or (isinstance(kind, str) and
                                 kind.startswith('xcit_mm.') and
                                 kind[len('xcit_mm.'):] in names):
                return i
        return -1

    def _load_weights_to_model(self, model, checkpoint, cfg) -> None:
        if checkpoint is not None:
            _check_fit(model, checkpoint, 'the checkpoint')
        super()._load_weights_to_model(model, checkpoint, cfg)


def _det_inferencer():
    from mmdet.apis import DetInferencer as MMDetInferencer

    class DetInferencer(_CheckedWeights, MMDetInferencer):
        """mmdet's ``DetInferencer`` for xcit_mm configs and checkpoints."""

    return DetInferencer


def _seg_inferencer():
    from mmseg.apis import MMSegInferencer as MMSegInferencerBase

    class MMSegInferencer(_CheckedWeights, MMSegInferencerBase):
        """mmseg's ``MMSegInferencer`` for xcit_mm configs and
        checkpoints."""

    return MMSegInferencer


def _feature_extractor():
    from mmcv.transforms import Compose
    from mmpretrain.apis import FeatureExtractor as MMPretrainExtractor
    from mmpretrain.registry import TRANSFORMS

    class FeatureExtractor(MMPretrainExtractor):
        """mmpretrain's ``FeatureExtractor``; for a DINO model, the frozen
        teacher's backbone (what DINO evaluates) on the config's
        evaluation pipeline (``test_dataloader``, else
        ``knn_val_dataloader``, else ``val_dataloader``). Each result is
        the (C,) class-token feature."""

        def _init_pipeline(self, cfg: Config):
            for key in ('test_dataloader', 'knn_val_dataloader',
                        'val_dataloader'):
                if cfg.get(key):
                    transforms = cfg[key].dataset.pipeline
                    return Compose([TRANSFORMS.build(t) for t in transforms])
            raise ConfigError(
                'The config has no evaluation pipeline to prepare images '
                'with: add test_dataloader (or knn_val_dataloader) with a '
                'dataset pipeline.', config_key='test_dataloader')

        @torch.no_grad()
        def forward(self, inputs, **kwargs):
            teacher = getattr(self.model, 'teacher', None)
            if teacher is None or kwargs:
                return super().forward(inputs, **kwargs)
            x = self.model.data_preprocessor(inputs, False)['inputs']
            feats = teacher['backbone'](x)
            if isinstance(feats, (tuple, list)):
                feats = feats[-1]
            return list(feats.unbind(0))

    return FeatureExtractor


def get_inferencer(config: Union[str, Config],
                   checkpoint: Optional[str] = None,
                   device: Union[str, torch.device] = 'cpu'):
    """The OpenMMLab inferencer for the config's task, with the checkpoint.

    - classification: ``mmpretrain.ImageClassificationInferencer``
      (``pred_class``, ``pred_score``, ``pred_scores``);
    - features (DINO and other self-supervised models): mmpretrain's
      ``FeatureExtractor`` on the teacher (see :func:`_feature_extractor`);
    - detection: ``mmdet.apis.DetInferencer`` (``predictions`` with
      ``labels``, ``scores``, ``bboxes`` and ``masks``);
    - segmentation: ``mmseg.apis.MMSegInferencer`` (``predictions``: the
      class map).
    """
    cfg = load_cfg(config)
    task = task_of(cfg)
    if task == 'detection':
        return _det_inferencer()(cfg, checkpoint, device=str(device),
                                 show_progress=False)
    if task == 'segmentation':
        return _seg_inferencer()(cfg, checkpoint, device=str(device))
    model = init_model(cfg, checkpoint, device)
    if task == 'features':
        return _feature_extractor()(model)
    from mmpretrain.apis import ImageClassificationInferencer
    return ImageClassificationInferencer(model)
