"""Train a model from a config with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [auto|PATH]]
        [--amp] [--auto-scale-lr] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

Works for every task config under configs/ (classification, detection,
segmentation): the config's ``default_scope`` picks the library. A missing
dataset, teacher checkpoint or ``load_from`` file ends the run with a short
message that says how to fix it, not a traceback. With ``--launcher
pytorch`` and no GPU the processes use gloo on the CPU (see
``xcit_mm.utils.setup_cpu_distributed``).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from xcit_mm.utils import MissingFileError, setup_cpu_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the latest checkpoint in the work dir when no '
        'path is given ("auto"), else from PATH')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (bf16 where the GPU '
                        'supports it, else fp16 with dynamic loss scaling)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by total batch / '
                        'auto_scale_lr.base_batch_size')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. '
        'train_dataloader.batch_size=32 model.backbone.drop_path_rate=0.1')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        help='job launcher')
    # torchrun sets LOCAL_RANK; torch.distributed.launch passes --local-rank
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def amp_dtype() -> str:
    import torch
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return 'bfloat16'
    return 'float16'


def merge_args(cfg: Config, args) -> Config:
    """Apply the command-line options to the config."""
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper in ('OptimWrapper', 'AmpOptimWrapper'):
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('dtype', amp_dtype())
            if cfg.optim_wrapper.dtype == 'float16':
                cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in \
                cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = dict('
                             'base_batch_size=N)` in the config.')
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def check_load_from(cfg: Config, config_path: str) -> None:
    """Fail early, with the fix, when ``load_from`` names a missing file."""
    path = cfg.get('load_from')
    if path and '://' not in path and not osp.isfile(path):
        what = 'resume from' if cfg.get('resume') else 'load_from'
        raise SystemExit(
            f'error: {what} checkpoint {path!r} does not exist (config '
            f'{config_path}). Train or download that checkpoint first, or '
            'pass another one with --cfg-options load_from=PATH.')


def main(argv=None):
    args = parse_args(argv)
    cfg = merge_args(Config.fromfile(args.config), args)
    check_load_from(cfg, args.config)
    setup_cpu_distributed(cfg)
    runner = (RUNNERS.build(cfg) if 'runner_type' in cfg
              else Runner.from_cfg(cfg))
    try:
        runner.train()
    except MissingFileError as e:
        raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
    main()
