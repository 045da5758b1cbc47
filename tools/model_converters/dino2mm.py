"""Convert official DINO XCiT checkpoints for xcit_mm.

    python tools/model_converters/dino2mm.py SRC DST
        [--config configs/dino/dino_xcit-s12-p16_8xb128-300e_in1k.py]
        [--iters-per-epoch 1251]

- A backbone-only file (``dino_xcit_<name>_pretrain.pth``, or the XCiT
  README's ``xcit_*_dino.pth``) becomes an xcit_mm backbone
  (``backbone.*``) for the linear-probe, fine-tune, Mask R-CNN and UperNet
  configs (``init_cfg=dict(type='Pretrained', checkpoint=DST,
  prefix='backbone.')``). No config needed. A checkpoint of an xcit_mm
  DINO run (``work_dirs/.../epoch_N.pth``) becomes such a file too: its
  teacher's backbone.
- A full training checkpoint (``..._full_checkpoint.pth``) needs the DINO
  ``--config`` of the same model: DST holds the student, the teacher, the
  loss centre, DINO's AdamW moments re-indexed for xcit_mm's optimizer, the
  epoch, and the parameter-scheduler states at that epoch (for which the
  iterations per epoch of the run are needed: 1251 for ImageNet-1k at a
  total batch of 1024), so that

      python tools/train.py CONFIG --resume DST

  continues the official run. Every tensor must fit the config's model.
"""
import argparse
import os.path as osp
import sys

from xcit_mm.cli import run_cli
from xcit_mm.runtime.fileio import atomic_torch_save
from xcit_mm.utils.errors import ConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official DINO checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--config', help='DINO config (full checkpoints)')
    parser.add_argument('--iters-per-epoch', type=int,
                        help='iterations per epoch of the resumed run '
                        '(default: from the config\'s training set and '
                        'batch size)')
    return parser.parse_args(argv)


def convert_full(ckpt: dict, args) -> dict:
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.registry import (
        MODELS,
        OPTIM_WRAPPER_CONSTRUCTORS,
        init_default_scope,
    )

    from xcit_mm.models.selfsup.dino_convert import (
        convert_dino_full_checkpoint,
        fast_forward_schedulers,
    )
    if not args.config:
        raise ConfigError(
            'A full DINO checkpoint needs --config: the DINO config of the '
            'same model (configs/dino/), to check every tensor and to lay '
            'out the optimizer and schedulers for --resume.')
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = MODELS.build(cfg.model)
    optim_cfg = dict(cfg.optim_wrapper)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=optim_cfg.pop('constructor', 'DefaultOptimWrapperConstructor'),
        optim_wrapper_cfg=optim_cfg,
        paramwise_cfg=optim_cfg.pop('paramwise_cfg', None)))
    optimizer = constructor(model).optimizer
    state, report = convert_dino_full_checkpoint(ckpt, model, optimizer)
    iters = args.iters_per_epoch
    if iters is None:
        from mmengine.runner import Runner
        loader = Runner.build_dataloader(cfg.train_dataloader)
        iters = len(loader)
    epoch = state['epoch']
    max_epochs = cfg.train_cfg.max_epochs
    schedulers, base = fast_forward_schedulers(cfg.param_scheduler,
                                               optimizer, epoch, iters,
                                               max_epochs)
    optim_state = state['optimizer']
    optim_state['param_groups'] = [
        dict(g, params=p['params']) for g, p in zip(
            [{k: v for k, v in g.items() if k != 'params'}
             for g in optimizer.param_groups], optim_state['param_groups'])]
    if base is not None:  # mmengine's extra group (logged as base_lr)
        optim_state['base_param_settings'] = base
    hub = MessageHub.get_instance('dino2mm')
    meta = dict(epoch=epoch, iter=epoch * iters,
                converted_from=osp.basename(args.src),
                seed=(cfg.get('randomness') or {}).get('seed'))
    print(f'full DINO checkpoint at epoch {epoch}: student {report["student"]}'
          f' / teacher {report["teacher"]} tensors, centre '
          f'{report["center"]}; {report["loaded"]} model tensors filled, '
          f'{report.get("optimizer_states", 0)} optimizer states, '
          f'{len(schedulers)} schedulers at iteration {meta["iter"]}')
    return dict(meta=meta, state_dict=state['state_dict'],
                optimizer=optim_state, param_schedulers=schedulers,
                message_hub=hub.state_dict())


def convert(args) -> int:
    from xcit_mm.models.selfsup.dino_convert import convert_dino_backbone
    from xcit_mm.runtime.checkpoint import safe_load
    from xcit_mm.utils.state_dict import dino_choice
    ckpt = safe_load(args.src)
    if isinstance(ckpt, dict) and 'student' in ckpt:
        out = convert_full(ckpt, args)
    else:
        state_dict, report = convert_dino_backbone(ckpt)
        arch = report['arch']
        note = dino_choice(report['source_format'],
                           'tools/model_converters/xcit2mm.py --key')
        if note:
            print(note)
        print(f'DINO backbone ({report["source_format"]} keys): arch '
              f'{arch["arch"]}, patch {arch["patch_size"]}; '
              f'{report["converted"]} tensors, missing {report["missing"]}, '
              f'unexpected {report["unexpected"]}')
        out = dict(state_dict=state_dict,
                   meta=dict(converted_from=osp.basename(args.src), **report))
    atomic_torch_save(out, args.dst)
    print(f'saved {args.dst}')
    return 0


def main(argv=None):
    args = parse_args(argv)
    return run_cli('dino2mm.py', lambda: convert(args))


if __name__ == '__main__':
    sys.exit(main())
