"""Official DINO XCiT checkpoints -> xcit_mm, checked.

Two kinds of files come from facebookresearch/dino:

- **backbone only** (``dino_xcit_<name>_pretrain.pth``): the teacher's
  backbone with plain official XCiT keys (``pos_embeder.*``, fused
  class-attention ``qkv``), no head. :func:`convert_dino_backbone` turns it
  into an xcit_mm classifier backbone (``backbone.*``), loadable by
  ``init_cfg=dict(type='Pretrained', ..., prefix='backbone.')`` or by the
  linear-probe configs;
- **full training checkpoints** (``..._full_checkpoint.pth``): ``student``
  and ``teacher`` (``module.backbone.*``, ``module.head.mlp.*``,
  ``module.head.last_layer.weight_{g,v}``), ``optimizer`` (DINO's two AdamW
  groups), ``epoch``, ``args``, ``dino_loss`` (``center``) and
  ``fp16_scaler``. :func:`convert_dino_full_checkpoint` turns it into the
  state of an :class:`xcit_mm.models.DINO` (student, teacher, centre), the
  AdamW moments re-indexed for xcit_mm's optimizer, and the epoch, so that
  a run resumed from the saved state continues the official one.

The module sits beside :class:`~xcit_mm.models.selfsup.DINO`, as the XCiT
and CrossFormer weight conversions sit beside their backbones
(:mod:`xcit_mm.models.backbones.xcit_convert`, whose key mapping it uses).
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from xcit_mm.models.backbones.xcit_convert import (
    convert_checkpoint,
    foreign_to_backbone,
)
from xcit_mm.utils.errors import CheckpointMismatchError
from xcit_mm.utils.state_dict import load_checked

BUFFER_SUFFIXES = ('running_mean', 'running_var', 'num_batches_tracked')


def convert_dino_backbone(ckpt: dict) -> Tuple[Dict, dict]:
    """A backbone-only DINO file -> ``{'backbone.*': tensor}`` and a
    report (architecture, counts). Every key must fit an XCiT exactly."""
    state_dict, report = convert_checkpoint(ckpt)
    if report['head_tensors']:
        raise CheckpointMismatchError(
            'This file has a classification head: it is an XCiT '
            'classifier, not a DINO backbone. Convert it with '
            'xcit_mm.models.backbones.xcit_convert.convert_checkpoint.',
            remedy='convert-xcit')
    return state_dict, report


def _strip_module(sd: Dict) -> Dict:
    if sd and all(k.startswith('module.') for k in sd):
        return OrderedDict((k[len('module.'):], v) for k, v in sd.items())
    return OrderedDict(sd)


def _network(sd: Dict) -> Tuple[Dict, List[Tuple[str, str]]]:
    """An official ``backbone.* / head.*`` dict -> xcit_mm names.

    Returns the converted dict and (official name, xcit_mm name) pairs in
    the official order."""
    sd = _strip_module(sd)
    backbone = OrderedDict((k[len('backbone.'):], v) for k, v in sd.items()
                           if k.startswith('backbone.'))
    head = OrderedDict((k, v) for k, v in sd.items() if k.startswith('head.'))
    other = [k for k in sd if k not in head and f'backbone.{k[9:]}' != k]
    if other or not backbone or not head:
        raise CheckpointMismatchError(
            'Expected DINO network weights under backbone.* and head.*; '
            f'got {len(backbone)} backbone and {len(head)} head tensors, '
            f'and other keys {other[:4]}.')
    converted, extra_head = foreign_to_backbone(backbone)
    if extra_head:
        raise CheckpointMismatchError(
            'The DINO backbone has a classification head '
            f'({sorted(extra_head)}); DINO removes it.')
    names = []
    for k in backbone:  # official order; renames are one-to-one here
        new = k.replace('pos_embeder.', 'pos_embed.', 1)
        names.append((f'backbone.{k}', f'backbone.{new}'))
    names += [(k, k) for k in head]  # the head keeps DINO's names
    out = OrderedDict((f'backbone.{k}', v) for k, v in converted.items())
    out.update(head)
    return out, names


def dino_param_order(student: Dict,
                     norm_last_layer: bool = True) -> List[str]:
    """The official names of DINO's optimizer parameters, in its order.

    DINO's ``get_params_groups`` puts the trainable parameters (in
    ``named_parameters`` order, i.e. the state-dict order without BN
    buffers) into a regularised group (not biases, more than one dim) and
    a non-regularised group; the optimizer state numbers them group by
    group."""
    student = _strip_module(student)
    params = [k for k, v in student.items()
              if not k.endswith(BUFFER_SUFFIXES)
              and not (norm_last_layer and k.endswith('last_layer.weight_g'))]
    regularized = [k for k in params
                   if not (k.endswith('.bias') or student[k].dim() == 1)]
    not_regularized = [k for k in params if k not in set(regularized)]
    return regularized + not_regularized


def convert_dino_full_checkpoint(ckpt: dict,
                                 model: Optional[nn.Module] = None,
                                 optimizer: Optional[torch.optim.Optimizer]
                                 = None) -> Tuple[dict, dict]:
    """An official full DINO checkpoint -> xcit_mm DINO state.

    Args:
        ckpt (dict): The loaded ``..._full_checkpoint.pth``.
        model (nn.Module, optional): An :class:`xcit_mm.models.DINO` of the
            same architecture; when given, the converted state dict must
            fill it exactly (no missing, unexpected or mis-shaped key).
        optimizer (Optimizer, optional): That model's optimizer (built by
            ``xcit_mm.DINOOptimWrapperConstructor`` from the config); when
            given, DINO's AdamW state is re-indexed into its layout.

    Returns:
        tuple: ``dict(state_dict=..., optimizer=... (or None),
        epoch=...)`` and a report with the counts.
    """
    missing_keys = [k for k in ('student', 'teacher') if k not in ckpt]
    if missing_keys:
        raise CheckpointMismatchError(
            f'Not a full DINO checkpoint: no {missing_keys}. A backbone-only '
            'DINO file converts with convert_dino_backbone (and an XCiT '
            'classifier with '
            'xcit_mm.models.backbones.xcit_convert.convert_checkpoint).')
    student, names = _network(ckpt['student'])
    teacher, _ = _network(ckpt['teacher'])
    state_dict = OrderedDict(student)
    state_dict.update((f'teacher.{k}', v) for k, v in teacher.items())
    center = (ckpt.get('dino_loss') or {}).get('center')
    if center is not None:
        state_dict['dino_loss.center'] = center
    report = dict(student=len(student), teacher=len(teacher),
                  center=center is not None,
                  epoch=int(ckpt.get('epoch', 0)))
    if model is not None:
        expected = model.state_dict()
        load_checked(expected, {'state_dict': state_dict},
                     what='the DINO model of the config',
                     hint='Use the config of the same XCiT size, patch size '
                     'and head.')
        report['loaded'] = len(expected)
    optim_state = None
    if optimizer is not None and 'optimizer' in ckpt:
        args = ckpt.get('args')
        norm_last_layer = getattr(args, 'norm_last_layer', True)
        optim_state = _convert_optimizer(ckpt['optimizer'], ckpt['student'],
                                         dict(names), norm_last_layer, model,
                                         optimizer)
        report['optimizer_states'] = len(optim_state['state'])
    return dict(state_dict=state_dict, optimizer=optim_state,
                epoch=report['epoch']), report


def _convert_optimizer(official: dict, student: Dict, rename: Dict,
                       norm_last_layer: bool, model: nn.Module,
                       optimizer: torch.optim.Optimizer) -> dict:
    order = dino_param_order(student, norm_last_layer)
    n_official = sum(len(g['params']) for g in official['param_groups'])
    if n_official != len(order):
        raise CheckpointMismatchError(
            f'DINO optimizer has {n_official} parameters, the student '
            f'{len(order)} trainable ones (norm_last_layer='
            f'{norm_last_layer}); the checkpoint is inconsistent.')
    flat = [i for g in official['param_groups'] for i in g['params']]
    by_name = {rename[name]: official['state'].get(idx)
               for name, idx in zip(order, flat)}
    names = {id(p): n for n, p in model.named_parameters()}
    target = optimizer.state_dict()
    ours = [names[id(p)] for g in optimizer.param_groups for p in g['params']]
    state = {}
    for idx, name in enumerate(ours):
        if name not in by_name:
            raise CheckpointMismatchError(
                f'{name} is trained by the config but not by the DINO '
                'checkpoint (norm_last_layer differs?).')
        if by_name[name] is not None:
            state[idx] = by_name[name]
    return dict(state=state, param_groups=target['param_groups'])


def fast_forward_schedulers(scheduler_cfgs: List[dict],
                            optimizer: torch.optim.Optimizer, epoch: int,
                            iters_per_epoch: int, max_epochs: int) -> list:
    """The state of mmengine's parameter schedulers after ``epoch`` epochs.

    A resumed run needs the schedulers' states (mmengine restarts them
    otherwise). They are built from the config and stepped as
    ``ParamSchedulerHook`` would, on a proxy optimizer with one group per
    distinct set of initial hyper-parameters (all groups of a kind follow
    the same values), then spread back over ``optimizer``'s groups, whose
    hyper-parameters are set to the resumed values.

    Returns:
        tuple: One state dict per scheduler (the checkpoint's
        ``param_schedulers``), and the values of mmengine's base group
        (``OptimWrapper.base_param_settings``, None for one group), which
        the checkpoint's ``optimizer`` carries.
    """
    import copy
    import inspect

    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS

    hyper = ('lr', 'weight_decay', 'momentum')
    keys = [tuple(g.get(h) for h in hyper) for g in optimizer.param_groups]
    kinds = sorted(set(keys), key=keys.index)
    if len(kinds) == 1 and len(keys) > 1:
        kinds = kinds * 2  # mmengine adds its base group only for >1 groups
    accepted = inspect.signature(type(optimizer)).parameters
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}
    proxy = type(optimizer)(
        [dict(params=[nn.Parameter(torch.zeros(1))],
              **{h: v for h, v in zip(hyper, kind) if v is not None})
         for kind in kinds], **defaults)
    wrapper = OptimWrapper(proxy)
    real = OptimWrapper(optimizer)  # the groups the resumed run will see
    schedulers = []
    for cfg in scheduler_cfgs:
        cfg = copy.deepcopy(dict(cfg))
        cfg.setdefault('end', max_epochs if cfg.get('by_epoch', True) else
                       max_epochs * iters_per_epoch)
        schedulers.append(PARAM_SCHEDULERS.build(
            cfg, default_args=dict(optimizer=wrapper,
                                   epoch_length=iters_per_epoch)))
    for _ in range(epoch):
        for _ in range(iters_per_epoch):
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        for s in schedulers:
            if s.by_epoch:
                s.step()
    index = [kinds.index(k) for k in keys]
    for group, i in zip(optimizer.param_groups, index):
        for name, value in proxy.param_groups[i].items():
            if name != 'params':
                group[name] = value
    base = None
    if real.base_param_settings is not None:
        index.append(len(kinds))  # mmengine's base group: the defaults
        base = dict(wrapper.base_param_settings)
        base['params'] = real.base_param_settings['params']
    states = []
    for s in schedulers:
        state = s.state_dict()
        for name, value in state.items():
            if isinstance(value, list) and len(value) == len(
                    wrapper.param_groups):
                state[name] = [value[i] for i in index]
        states.append(state)
    return states, base
