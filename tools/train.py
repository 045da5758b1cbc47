"""Train a model from a config with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [auto|PATH]]
        [--amp] [--auto-scale-lr] [--cfg-options k=v ...] [--allow-new-keys]
        [--launcher {none,pytorch,slurm,mpi}] [--debug]

Works for every task config under configs/ (classification, detection,
segmentation): the config's ``default_scope`` picks the library.

Reliability (see tools/README.md, "Reliability"): epoch-based configs run
``xcit_mm.ResumableEpochBasedTrainLoop`` and ``xcit_mm.AtomicCheckpointHook``
so that ``--resume`` (= ``--resume auto``) continues bit-exactly from the
last *complete* checkpoint, also in the middle of an epoch; a NaN loss stops
training (``xcit_mm.NonFiniteLossHook``); ``--cfg-options`` keys that are
neither in the config nor arguments of the object they configure are
refused; bad input (missing data, malformed annotations, a checkpoint of
another model, an unknown ``type``) is reported in one paragraph, exit
status 1. ``--debug`` shows the traceback instead.
With ``--launcher pytorch`` and no GPU the processes use gloo on the CPU
(see ``xcit_mm.utils.setup_cpu_distributed``).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from xcit_mm.datasets.checks import check_data_paths, diagnose_datasets
from xcit_mm.engine.defaults import apply_train_defaults
from xcit_mm.utils.config_checks import (apply_common_args,
                                         check_checkpoint_paths)
from xcit_mm.utils.cli import explain_exception, failed_in_dataset, run_cli
from xcit_mm.utils.errors import MissingFileError
from xcit_mm.utils.fileio import find_resume_checkpoint
from xcit_mm.utils.launch import setup_cpu_distributed


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
        'train_dataloader.batch_size=32 model.backbone.drop_path_rate=0.1; '
        'a key must exist in the config or be an argument of the object it '
        'configures')
    parser.add_argument('--allow-new-keys', action='store_true',
                        help='accept any --cfg-options key')
    parser.add_argument('--debug', action='store_true',
                        help='show tracebacks of bad-input errors')
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
    apply_common_args(cfg, args)
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
        # the newest *complete* checkpoint (mmengine would take whatever
        # last_checkpoint names); none: start from scratch / load_from
        found = find_resume_checkpoint(cfg.work_dir)
        if found is not None:
            cfg.resume = True
            cfg.load_from = found
            print_log(f'Resuming from {found}.', logger='current')
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def check_inputs(cfg: Config) -> list:
    """Fail early, and clearly, on missing data or checkpoint files.

    Returns the data loader keys the run uses."""
    loaders = ['train_dataloader'] + (
        ['val_dataloader'] if cfg.get('val_cfg') else [])
    if cfg.get('load_from') and not osp.isfile(cfg.load_from) and \
            '://' not in cfg.load_from:
        what = 'resume from' if cfg.get('resume') else 'load_from'
        raise MissingFileError(
            f'The {what} checkpoint {cfg.load_from!r} does not exist. Check '
            'the path, train or convert that checkpoint first '
            '(tools/model_converters/xcit2mm.py), or pass another with '
            '--cfg-options load_from=PATH; --resume without a path takes '
            'the newest complete checkpoint of the work dir.')
    check_checkpoint_paths(cfg)
    check_data_paths(cfg, loaders)
    return loaders


def train(args) -> None:
    if not osp.isfile(args.config):
        raise MissingFileError(f'The config file {args.config} does not '
                                'exist (configs/ holds the shipped ones).')
    cfg = merge_args(Config.fromfile(args.config), args)
    loaders = check_inputs(cfg)
    changes = apply_train_defaults(cfg)
    if changes:
        print_log('tools/train.py reliability defaults: ' + '; '.join(
            changes), logger='current')
    setup_cpu_distributed(cfg)
    try:
        runner = (RUNNERS.build(cfg) if 'runner_type' in cfg
                  else Runner.from_cfg(cfg))
        runner.train()
    except Exception as e:
        # a data set that failed to build: look for the cause in the files
        if explain_exception(e) is None and failed_in_dataset(e):
            diagnose_datasets(cfg, loaders)
        raise


def main(argv=None):
    args = parse_args(argv)
    run_cli('train.py', lambda: train(args), debug=args.debug)


if __name__ == '__main__':
    main()
