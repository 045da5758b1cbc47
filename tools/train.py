"""Train a model from a config with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [PATH]]
        [--amp] [--auto-scale-lr] [--no-validate] [--cfg-options k=v ...]
        [--allow-new-keys] [--launcher {none,pytorch,slurm,mpi}] [--debug]

Works for every task config under configs/: the config's ``default_scope``
picks the library, and its ``runner_type`` the Runner. The config is what
runs: this script changes only what an option names, as mmpretrain's,
mmdet's and mmseg's own ``tools/train.py`` do, so those train xcit_mm's
configs to the same weights. The reliability of a run (the exactly
resumable loops, atomic checkpoints, a stop on a NaN loss, the checkpoint
check, safe checkpoint loading, torchrun restarts, CPU process groups) comes
from the config's runtime base (``configs/_base_/default_runtime.py``,
``runtime_mmdet.py``, ``runtime_mmseg.py``); ``tools/misc/print_config.py``
shows all of it.

What this script adds to the libraries' own: ``--cfg-options`` keys that
are neither in the config nor arguments of the object they configure are
refused; bad input (missing data, malformed annotations, a checkpoint of
another model, an unknown ``type``) is reported in one paragraph with exit
status 1 (``--debug`` shows the traceback); ``--amp`` also works on the CPU
(bf16 autocast); ``--resume`` without a path takes the newest *complete*
checkpoint of the work dir and, when there is none, starts from the
config's ``load_from``. Multi-process runs: ``tools/dist_train.sh``
(torchrun); on CPUs set ``XCIT_MM_CPU=1`` (gloo).
"""
import argparse
import os

from xcit_mm.cli import add_config_args, load_config, run_cli
from xcit_mm.cli.train_test import (
    add_train_args,
    apply_train_args,
    build_and_run,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    add_config_args(parser)
    add_train_args(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def train(args) -> None:
    cfg = load_config(args)
    loaders = apply_train_args(cfg, args)
    build_and_run(cfg, loaders, 'train')


def main(argv=None):
    args = parse_args(argv)
    run_cli('train.py', lambda: train(args), debug=args.debug)


if __name__ == '__main__':
    main()
