"""DeiT-style distillation without a distillation token, as in the official
XCiT training: the classifier runs the frozen teacher, and the head
(:class:`~xcit_mm.models.heads.DistillClsHead`) feeds the class-token logits
to both the classification and the distillation loss."""
import os.path as osp
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

from xcit_mm.models.heads import DistillClsHead
from xcit_mm.registry import MODELS
from xcit_mm.utils.errors import ConfigError, MissingFileError
from xcit_mm.utils.state_dict import load_checked

TEACHER_HELP = """\
The distillation teacher's checkpoint {path!r} does not exist. Save one from \
timm: the state dict of timm.create_model('regnety_160.deit_in1k', \
pretrained=True) is DeiT's RegNetY-16GF teacher, that of the default teacher \
config (timm 'regnety_160'). Or set model.teacher_ckpt in the config to any \
checkpoint of your teacher config (mmpretrain/mmengine, timm or DeiT \
format)."""


class _Detached:
    """Holds a module *outside* its owner's module tree.

    The teacher kept this way has no entry in ``parameters()``,
    ``state_dict()`` or ``buffers()`` of the student: the optimizer, the
    student's checkpoints, DDP (no gradient sync, no buffer broadcast) and
    the EMA copy never see it. ``deepcopy`` (mmengine's EMA model) shares the
    one frozen teacher instead of duplicating it.
    """
    __slots__ = ('module', )

    def __init__(self, module: nn.Module):
        self.module = module

    def __deepcopy__(self, memo) -> '_Detached':
        return self


def build_teacher(teacher: Union[dict, str, nn.Module]) -> nn.Module:
    """Build a teacher from a model config dict, a config file or a module.

    Args:
        teacher (dict | str | nn.Module): An mmpretrain model config (e.g.
            ``dict(type='TimmClassifier', model_name='regnety_160')`` or any
            ``ImageClassifier``), the path of a config file whose ``model``
            is the teacher (``'mmpretrain::resnet/resnet50_8xb32_in1k.py'``
            names a config of an installed package), or a module.
    """
    if isinstance(teacher, nn.Module):
        return teacher
    if isinstance(teacher, str):
        if '::' in teacher:
            from mmengine.hub import get_config
            teacher = get_config(teacher)
        else:
            if not osp.isfile(teacher):
                raise MissingFileError(
                    f'Teacher config file {teacher!r} does not exist: fix '
                    'model.teacher, or give the teacher as a model dict.')
            teacher = Config.fromfile(teacher)
        # a config's top-level data_preprocessor is its model's (as in the
        # Runner): it tells how the teacher normalises its input
        model = teacher.model
        if teacher.get('data_preprocessor') is not None:
            model.setdefault('data_preprocessor', teacher.data_preprocessor)
        teacher = model
    if not isinstance(teacher, dict):
        raise TypeError('teacher must be a model config dict, a config file '
                        f'path or an nn.Module, got {type(teacher)}.')
    return MMPRETRAIN_MODELS.build(teacher)


@MODELS.register_module()
class DistillImageClassifier(ImageClassifier):
    """An mmpretrain :class:`ImageClassifier` trained with a frozen teacher.

    DeiT-style hard or soft distillation *without* a distillation token,
    as in the official XCiT code. The classifier computes the teacher's
    logits ``t`` on the *same* augmented batch as the student (the data
    preprocessor applies Mixup/CutMix before :meth:`loss` runs, and the
    teacher gets the student's input tensor, re-normalised if the teacher
    states another normalisation, see ``teacher``) and hands them to the
    head, a :class:`~xcit_mm.models.heads.DistillClsHead`, which computes
    ``(1-α)·CE(s, y) + α·KD(s, t)`` (its ``alpha`` and ``distill_loss``).

    The teacher is frozen: always in eval mode, run under ``no_grad``, and
    kept outside the module tree, so it is not in ``parameters()`` (not in
    the optimizer, not synced by DDP, not averaged by EMA) and not in
    ``state_dict()`` (not saved in the student's checkpoints). ``.to()`` /
    ``.cuda()`` move it with the student. Its weights are loaded from
    ``teacher_ckpt`` by :meth:`init_weights`, which mmengine's Runner calls
    when training starts; testing a distilled student does not need the
    teacher's file.

    Args:
        backbone, neck, head, pretrained, train_cfg, data_preprocessor,
            init_cfg: As :class:`mmpretrain.models.ImageClassifier`. The head
            must be a :class:`~xcit_mm.models.heads.DistillClsHead`.
        teacher (dict | str | nn.Module): The teacher's full model config
            (any mmpretrain classifier, e.g. ``TimmClassifier``), a config
            file whose ``model`` is the teacher, or a module. It must predict
            the student's classes. If its ``data_preprocessor`` states a
            normalisation (mean / std / ``to_rgb``) other than the student's,
            the batch is re-normalised for it; without one it gets the
            student's batch as it is.
        teacher_ckpt (str, optional): The teacher's checkpoint (mmengine,
            timm or DeiT format; local path or URL). Required to train.
            Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 teacher: Union[dict, str, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            backbone=backbone, neck=neck, head=head, pretrained=pretrained,
            train_cfg=train_cfg, data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if not isinstance(self.head, DistillClsHead):
            raise ConfigError(
                "DistillImageClassifier needs head=dict(type='xcit_mm."
                "DistillClsHead', ...) (it computes the distillation term "
                f'from the teacher logits), got {type(self.head).__name__}.')
        self.teacher_ckpt = teacher_ckpt
        teacher_model = build_teacher(teacher)
        teacher_model.requires_grad_(False)
        teacher_model.eval()
        self._teacher = _Detached(teacher_model)
        self._renormalise: Optional[bool] = None
        self._flip_channels = False

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (not a submodule: see the class docstring)."""
        return self._teacher.module

    def _teacher_input(self, inputs: torch.Tensor) -> torch.Tensor:
        """The student's batch in the teacher's normalisation.

        When the teacher's data preprocessor declares a normalisation (mean,
        std, channel order) different from the student's, the batch is
        un-normalised, its channels reordered if needed, and normalised for
        the teacher. Exact after Mixup / CutMix, which commute with a
        per-channel affine map. A teacher without normalisation settings
        takes the student's batch as it is.
        """
        s = self.data_preprocessor
        t = getattr(self.teacher, 'data_preprocessor', None)
        if not getattr(t, '_enable_normalize', False):
            return inputs
        if self._renormalise is None:  # decided once, on the first batch
            same_order = bool(getattr(s, 'to_rgb', False)) == bool(
                getattr(t, 'to_rgb', False))
            same_stats = (getattr(s, '_enable_normalize', False)
                          and s.mean.shape == t.mean.shape
                          and torch.equal(s.mean, t.mean.to(s.mean))
                          and torch.equal(s.std, t.std.to(s.std)))
            self._renormalise = not (same_order and same_stats)
            self._flip_channels = not same_order
            if self._renormalise:
                MMLogger.get_current_instance().info(
                    'The teacher expects another input normalisation than '
                    'the student: the batch is re-normalised for it.')
        if not self._renormalise:
            return inputs
        x = inputs.float()
        if getattr(s, '_enable_normalize', False):
            x = x * s.std + s.mean  # back to pixel values
        if self._flip_channels and x.size(1) == 3:
            x = x.flip(1)  # RGB <-> BGR
        return (x - t.mean) / t.std

    # ----------------------------------------------------------- plumbing
    def _apply(self, fn, *args, **kwargs):
        # .to(), .cuda(), .half() ... move the teacher along with the student
        super()._apply(fn, *args, **kwargs)
        holder = self.__dict__.get('_teacher')
        if holder is not None:
            holder.module._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> 'DistillImageClassifier':
        super().train(mode)
        holder = self.__dict__.get('_teacher')
        if holder is not None:
            holder.module.eval()
        return self

    def init_weights(self) -> None:
        """Initialise the student (its ``init_cfg``) and load the teacher."""
        super().init_weights()
        self.load_teacher()

    def load_teacher(self, path: Optional[str] = None) -> None:
        """Load the teacher's weights, checked key by key.

        Args:
            path (str, optional): Checkpoint path or URL. Defaults to
                ``teacher_ckpt``.

        Raises:
            MissingFileError: the file does not exist (the message says how
                to get one).
            CheckpointMismatchError: the weights do not fit the teacher
                config.
        """
        path = path or self.teacher_ckpt
        if path is None:
            raise ConfigError(
                'DistillImageClassifier needs teacher_ckpt to train: '
                + TEACHER_HELP.format(path='checkpoints/teacher.pth'),
                config_key='model.teacher_ckpt', config_value='PATH',
                remedy='teacher-checkpoint')
        if '://' not in path and not osp.isfile(osp.expanduser(path)):
            raise MissingFileError(TEACHER_HELP.format(path=path),
                                   config_key='model.teacher_ckpt',
                                   config_value='PATH',
                                   remedy='teacher-checkpoint')
        state, _ = load_checked(
            self.teacher, osp.expanduser(path), prefix='module.',
            what=f'the teacher config ({type(self.teacher).__name__})',
            hint='Check that model.teacher is the architecture the file was '
            'saved from.')
        self.teacher.eval()
        MMLogger.get_current_instance().info(
            f'Loaded the distillation teacher '
            f'{type(self.teacher).__name__} ({len(state)} tensors) from '
            f'{path}.')

    # --------------------------------------------------------------- loss
    @torch.no_grad()
    def teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The frozen teacher's logits (B, K) for a preprocessed batch."""
        self.teacher.eval()
        logits = self.teacher(self._teacher_input(inputs), mode='tensor')
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            raise TypeError(
                'The teacher must return (B, num_classes) logits in '
                f'mode="tensor", got {type(logits)}.')
        return logits

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """``loss_cls`` and ``loss_distill`` of the head, given the teacher's
        logits on the same batch.

        Args:
            inputs (Tensor): The preprocessed (and batch-augmented) images.
            data_samples (list[DataSample]): Targets (``gt_score`` after
                Mixup/CutMix, else ``gt_label``).
        """
        return self.head.loss(self.extract_feat(inputs), data_samples,
                              teacher_logits=self.teacher_logits(inputs))
