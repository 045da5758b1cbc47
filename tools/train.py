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
``--amp`` trains with mixed precision: mmengine's ``AmpOptimWrapper`` on a
GPU (bf16 where the rank's GPU computes it natively, else fp16 with dynamic
loss scaling), bf16 autocast on the CPU (``xcit_mm.AutocastOptimWrapper``;
weights and optimizer state stay fp32). ``--resume`` with no complete
checkpoint in the work dir says so and starts from scratch.
With ``--launcher pytorch`` and no usable GPU the run stops with one
paragraph, unless CPU runs are asked for with ``XCIT_MM_CPU=1`` (or torch
has no CUDA): the processes then use gloo on the CPU (see
``xcit_mm.utils.setup_cpu_distributed``).
A process that torchrun restarts (``MAX_RESTARTS=N tools/dist_train.sh``)
resumes from the newest complete checkpoint of the work dir by itself.
The shipped configs are plain OpenMMLab configs: mmpretrain's, mmdet's and
mmseg's own ``tools/train.py`` (``Config.fromfile`` + ``Runner.from_cfg``)
train them too (tested on tiny data), without what this script adds: the
reliability defaults above (resumable loop, atomic checkpoints, NaN stop,
checkpoint check, image loading that names a bad file), the
``--cfg-options`` checks, the one-paragraph errors, ``--amp`` on the CPU,
``--resume PATH`` / the complete-checkpoint choice, and CPU
``--launcher pytorch``.
"""
import argparse
import logging
import os
import os.path as osp

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from xcit_mm.datasets.checks import check_data_paths, diagnose_datasets
from xcit_mm.engine.defaults import apply_train_defaults
from xcit_mm.utils.config_checks import (apply_common_args,
                                         check_checkpoint_paths)
from xcit_mm.utils.amp import select_amp_dtype
from xcit_mm.utils.cli import (add_config_args, explain_exception,
                               failed_in_dataset, load_config, run_cli)
from xcit_mm.utils.errors import ConfigError, MissingFileError
from xcit_mm.runtime.fileio import find_resume_checkpoint
from xcit_mm.runtime.launch import setup_cpu_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    add_config_args(parser)
    parser.add_argument('--work-dir', help='where to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the latest checkpoint in the work dir when no '
        'path is given ("auto"), else from PATH')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (bf16 where the GPU '
                        'supports it, else fp16 with dynamic loss scaling; '
                        'on the CPU bf16 autocast)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by total batch / '
                        'auto_scale_lr.base_batch_size')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        help='job launcher')
    # torchrun sets LOCAL_RANK; torch.distributed.launch passes --local-rank
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def amp_dtype() -> str:
    """bf16 where this rank's GPU computes it natively, else fp16."""
    import torch
    device = 'cpu'
    if torch.cuda.is_available():  # no CUDA context is created here
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
        device = f'cuda:{local_rank % torch.cuda.device_count()}'

    return select_amp_dtype(device)


def _has_gpu() -> bool:
    import torch
    return torch.cuda.is_available()


def merge_args(cfg: Config, args) -> Config:
    """Apply the command-line options to the config."""
    apply_common_args(cfg, args)
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ConfigError(
                f'--amp needs optim_wrapper.type OptimWrapper or '
                f'AmpOptimWrapper; the config has {optim_wrapper!r}. Drop '
                '--amp, or set the mixed precision in that wrapper.')
        if not _has_gpu():
            # mmengine's AmpOptimWrapper needs a GPU: bf16 autocast on the
            # CPU instead (no loss scaling needed)
            cfg.optim_wrapper.type = 'xcit_mm.AutocastOptimWrapper'
            cfg.optim_wrapper.dtype = 'bfloat16'
            cfg.optim_wrapper.pop('loss_scale', None)
            print_log('--amp on the CPU: bf16 autocast '
                      '(xcit_mm.AutocastOptimWrapper).', logger='current')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('dtype', amp_dtype())
            if cfg.optim_wrapper.dtype == 'float16':
                cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in \
                cfg.auto_scale_lr:
            raise ConfigError('--auto-scale-lr needs `auto_scale_lr = dict('
                              'base_batch_size=N)` in the config.')
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.resume is None and int(
            os.environ.get('TORCHELASTIC_RESTART_COUNT', 0)) > 0:
        # torchrun restarted this process (--max-restarts) after a failure:
        # continue from the last complete checkpoint, not from scratch
        print_log('Restarted by torchrun (restart '
                  f"{os.environ['TORCHELASTIC_RESTART_COUNT']}): resuming.",
                  logger='current')
        args.resume = 'auto'
    if args.resume == 'auto':
        # the newest *complete* checkpoint (mmengine would take whatever
        # last_checkpoint names); none: start from scratch / load_from
        found = find_resume_checkpoint(cfg.work_dir)
        if found is not None:
            cfg.resume = True
            cfg.load_from = found
            print_log(f'Resuming from {found}.', logger='current')
        else:
            start = (f'from load_from={cfg.load_from}' if cfg.get('load_from')
                     else 'from scratch')
            print_log(
                f'--resume: no complete checkpoint in the work dir '
                f'{cfg.work_dir}, so training starts {start}. (Pass '
                '--work-dir of the run to continue, or --resume PATH.)',
                logger='current', level=logging.WARNING)
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
    cfg = merge_args(load_config(args), args)
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
