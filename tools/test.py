"""Evaluate a checkpoint with mmengine's Runner (real task metrics).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--show-dir DIR] [--tta] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}] [--debug]

``--out`` dumps the raw predictions (mmengine's DumpResults);
``--show-dir`` draws the predictions of every test image through the
task's visualization hook; ``--tta`` uses the config's ``tta_model`` /
``tta_pipeline`` when it has them.

The config is what runs (see ``tools/train.py``). With xcit_mm's runtime
bases, CHECKPOINT is read with ``torch.load(weights_only=True)`` and an
allow-list, and must fill the whole model (``xcit_mm.CheckpointMatchHook``
is strict outside training). Bad input is reported in one paragraph with
exit status 1 (``--debug`` shows the traceback). Multi-process runs:
``tools/dist_test.sh``; on CPUs set ``XCIT_MM_CPU=1`` (gloo).
"""
import argparse
import os

from xcit_mm.cli import add_config_args, load_config, run_cli
from xcit_mm.cli.train_test import (
    add_test_args,
    apply_test_args,
    build_and_run,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    add_config_args(parser)
    add_test_args(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def test(args):
    cfg = load_config(args)
    loaders = apply_test_args(cfg, args)
    return build_and_run(cfg, loaders, 'test')


def main(argv=None):
    args = parse_args(argv)
    return run_cli('test.py', lambda: test(args), debug=args.debug)


if __name__ == '__main__':
    main()
