"""What the XCiT and CrossFormer backbones share: loading pretrained
weights, frozen stages, gradient checkpointing and input checks."""
import re
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from xcit_mm.models.utils.arch import transformer_init_
from xcit_mm.utils.errors import (
    CheckpointMismatchError,
    ConfigError,
    InputShapeError,
    MissingFileError,
)
from xcit_mm.utils.state_dict import load_checked


class TransformerBackbone(BaseBackbone):
    """Base of the xcit_mm backbones.

    A subclass sets the class attributes below, builds its layers, lists
    what ``frozen_stages`` freezes in :meth:`_frozen_modules` and runs each
    block through :meth:`_run`. This class then provides:

    - ``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix=...)``:
      :meth:`load_pretrained` reads an xcit_mm, official or timm file
      through the family's :attr:`checkpoint_filter` and
      :func:`xcit_mm.utils.state_dict.load_checked`, so that a mismatch
      raises an error naming the keys, and logs the counts; otherwise the
      official initialisation (:func:`transformer_init_`);
    - frozen stages, re-applied by ``train()``, and ``norm_eval``;
    - ``with_cp``: gradient checkpointing of each block in training;
    - :meth:`_check_input`: the channel and size checks and the zero
      padding of the input to a multiple of the family's input step
      (:meth:`_input_step`; XCiT's is 1: it pads nothing).

    Args:
        in_channels (int): Image channels.
        frozen_stages (int): -1 freezes nothing; what larger values freeze
            is up to the subclass.
        norm_eval (bool): Keep batch-norm layers in eval mode in training.
        with_cp (bool): Gradient checkpointing of every block.
        init_cfg (dict, optional): See above.
        pretrained (str, optional): Refused: mmseg hands its
            ``model.pretrained`` to the backbone, and its base configs set it
            to ResNet weights; the error says what to set instead.
    """
    #: The family's name in messages and logs.
    family: str = ''
    #: The module whose ``convert_checkpoint`` converts the family's
    #: foreign (official, timm) checkpoints.
    converter: str = ''
    #: That conversion, as a :data:`~xcit_mm.utils.errors.REMEDIES` key.
    convert_remedy: Optional[str] = None
    #: ``state_dict -> (state_dict, source_format)``: the family's key
    #: mapping from foreign layouts to this backbone's names (classifier
    #: head under ``head.fc.*``).
    checkpoint_filter = None
    #: Checkpoint keys that only the classification model has.
    classification_only = re.compile(r'^(norm|head)\.')
    #: Whether every backbone tensor must be in a pretrained file.
    pretrained_strict: bool = True
    #: With ``pretrained_strict=False``: the least share that must load.
    min_loaded_ratio: float = 0.

    def __init__(self,
                 in_channels: int,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None):
        if pretrained is not None:
            raise ConfigError(
                f'{self.family} got pretrained={pretrained!r}: mmseg passes '
                '`model.pretrained` to the backbone, and mmseg\'s _base_ '
                'model configs (e.g. upernet_r50.py) set it to their ResNet '
                'weights. Set model.pretrained=None in your config and give '
                f'{self.family} its weights with model.backbone.init_cfg='
                "dict(type='Pretrained', checkpoint=PATH).",
                config_key='model.pretrained', config_value='None')
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """Official init, or a checked load of pretrained weights."""
        if (isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            self.load_pretrained(self.init_cfg['checkpoint'],
                                 prefix=self.init_cfg.get('prefix', ''))
            self._is_init = True
            return
        if self.init_cfg is None:
            self.apply(transformer_init_)
            self._init_extra_weights()
        super().init_weights()

    def _init_extra_weights(self) -> None:
        """Official init of what :func:`transformer_init_` leaves alone."""

    def load_pretrained(self, filename: str, prefix: str = '') -> dict:
        """Load an xcit_mm or foreign checkpoint file into this backbone.

        Classification-only keys that this backbone lacks (a dense backbone
        fed by a classifier) are skipped; a shape mismatch raises, and so,
        depending on :attr:`pretrained_strict`, does any missing or
        unexpected key or too small a share of loaded tensors.

        Args:
            filename (str): The checkpoint.
            prefix (str): Read the keys with this prefix (e.g.
                ``'backbone.'``, ``'teacher.backbone.'``) when there are
                any. Defaults to ``''``.

        Returns:
            dict: ``loaded``, ``missing``, ``unexpected`` and
            ``skipped_classification_only`` counts and the source
            ``format``, also logged.
        """
        try:
            _, report = load_checked(
                self, filename, prefix=prefix,
                key_map=type(self).checkpoint_filter,
                skip=self.classification_only.match,
                mode='exact' if self.pretrained_strict else 'partial',
                min_loaded_ratio=self.min_loaded_ratio,
                what=f'this {self.family} (prefix {prefix!r})',
                hint='Check the arch and init_cfg.prefix, convert official '
                f'or timm weights with {self.converter}.convert_checkpoint '
                '(backbone_only=True for a detection / segmentation '
                'backbone), save the result and point init_cfg.checkpoint '
                'at it, or set model.backbone.init_cfg=None to train from '
                'scratch.')
        except (MissingFileError, CheckpointMismatchError) as e:
            e.config_keys = ('model.backbone.init_cfg.checkpoint', )
            e.config_value, e.remedy = 'PATH', self.convert_remedy
            raise
        counts = dict(loaded=len(report['loaded']),
                      missing=len(report['missing']),
                      unexpected=len(report['unexpected']),
                      skipped_classification_only=len(report['skipped']),
                      format=report['source_format'])
        logger = MMLogger.get_current_instance()
        logger.info(f'Loaded pretrained {self.family} from {filename}: ' +
                    ', '.join(f'{k}={v}' for k, v in counts.items()))
        for kind in ('missing', 'unexpected'):
            if report[kind]:
                logger.warning(f'{kind} keys of {self.family} in {filename}:'
                               f' {report[kind][:10]}')
        return counts

    # ---------------------------------------------------------------- freeze
    def _frozen_modules(self) -> List[Union[nn.Module, nn.Parameter]]:
        """What ``frozen_stages`` freezes: modules and parameters."""
        return []

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            if isinstance(m, nn.Parameter):
                m.requires_grad = False
                continue
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'TransformerBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # --------------------------------------------------------------- forward
    def _run(self, block: nn.Module, *args):
        """``block(*args)``, gradient-checkpointed when ``with_cp`` is on
        in training."""
        if self.with_cp and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def _input_step(self) -> Tuple[int, str, str]:
        """(the stride the input is padded to, what it is, advice when an
        image is smaller)."""
        raise NotImplementedError

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Check a (B, in_channels, H, W) batch, zero-pad H and W at the
        bottom / right to multiples of the first stride."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            got = x.shape[1] if x.dim() == 4 else '?'
            raise InputShapeError(
                f'{self.family} expects images of shape (B, '
                f'{self.in_channels}, H, W), got {tuple(x.shape)}. Set '
                f'in_channels={got} in the backbone config if your data has '
                'another number of channels.')
        H, W = x.shape[2:]
        step, name, advice = self._input_step()
        if H < step or W < step:
            raise InputShapeError(
                f'{self.family} needs images of at least {step}x{step} '
                f'pixels, got {H}x{W} ({name}). Resize the input (e.g. the '
                f'Resize transform in the data pipeline){advice}.')
        if H % step or W % step:
            x = F.pad(x, (0, (-W) % step, 0, (-H) % step))
        return x
