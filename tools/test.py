"""Evaluate a checkpoint with mmengine's Runner (real task metrics).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--show-dir DIR] [--tta] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

``--out`` dumps the raw predictions (mmengine's DumpResults);
``--show-dir`` draws the predictions of every test image through the
task's visualization hook;
``--tta`` uses the config's ``tta_model`` / ``tta_pipeline`` when it has
them.

CHECKPOINT is read with ``torch.load(weights_only=True)`` and an allow-list
(``xcit_mm.utils.safe_load``) and must fill the whole model
(``xcit_mm.CheckpointMatchHook(mode='strict')``); bad input is reported in
one paragraph with exit status 1 (``--debug`` shows the traceback).
With ``--launcher pytorch`` and no usable GPU the run stops with one
paragraph, unless CPU runs are asked for with ``XCIT_MM_CPU=1`` (or torch
has no CUDA): the processes then use gloo on the CPU (see
``xcit_mm.utils.setup_cpu_distributed``).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, ConfigDict
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from xcit_mm.datasets.checks import check_data_paths, diagnose_datasets
from xcit_mm.engine.defaults import apply_test_defaults
from xcit_mm.utils.config_checks import apply_common_args
from xcit_mm.utils.cli import (add_config_args, explain_exception,
                               failed_in_dataset, load_config, run_cli)
from xcit_mm.utils.errors import ConfigError, MissingFileError
from xcit_mm.runtime.launch import setup_cpu_distributed

#: How each library's visualization hook is told to draw and where.
VIS_HOOK_KEYS = {
    'VisualizationHook': dict(enable=True, out_dir='{}'),  # mmpretrain
    'DetVisualizationHook': dict(draw=True, test_out_dir='{}'),  # mmdet
    'SegVisualizationHook': dict(draw=True),  # mmseg: under work_dir
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    add_config_args(parser)
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save logs and metrics')
    parser.add_argument('--out', help='dump predictions to this .pkl file')
    parser.add_argument('--show-dir',
                        help='save drawn predictions in this directory')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (needs tta_model and '
                        'tta_pipeline in the config)')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_show_dir(cfg: Config, show_dir: str) -> None:
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None or hook.get('type', '').split('.')[-1] not in \
            VIS_HOOK_KEYS:
        raise ConfigError('--show-dir needs a VisualizationHook, '
                          'DetVisualizationHook or SegVisualizationHook in '
                          'default_hooks.visualization of the config.')
    for key, value in VIS_HOOK_KEYS[hook.type.split('.')[-1]].items():
        hook[key] = value.format(show_dir) if isinstance(value, str) \
            else value
    # every test image (mmpretrain's hook draws one in `interval`, 5000 by
    # default; mmseg's one in 50)
    hook['interval'] = 1
    if hook.type.split('.')[-1] == 'SegVisualizationHook':
        # mmseg saves drawings under <work_dir>/<timestamp>/vis_data; point
        # the visualizer's local backend at show_dir instead.
        cfg.visualizer.vis_backends = [
            dict(type='LocalVisBackend', save_dir=show_dir)
        ]


def merge_args(cfg: Config, args) -> Config:
    apply_common_args(cfg, args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_show_dir(cfg, osp.abspath(args.show_dir))
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ConfigError('--tta needs `tta_model` and `tta_pipeline` in '
                              'the config.')
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ConfigError('--out must be a .pkl or .pickle file.')
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, dict):
            evaluator = [evaluator]
        cfg.test_evaluator = list(evaluator) + [
            dict(type='DumpResults', out_file_path=args.out)
        ]
    return cfg


def test(args):
    cfg = merge_args(load_config(args), args)
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise MissingFileError(
            f'CHECKPOINT {args.checkpoint} does not exist. Pass the .pth that '
            'training wrote (work_dirs/<config>/epoch_N.pth), or convert '
            'official / timm XCiT weights with '
            'tools/model_converters/xcit2mm.py.')
    check_data_paths(cfg, ['test_dataloader'])
    apply_test_defaults(cfg)
    setup_cpu_distributed(cfg)
    try:
        runner = (RUNNERS.build(cfg) if 'runner_type' in cfg
                  else Runner.from_cfg(cfg))
        return runner.test()
    except Exception as e:
        if explain_exception(e) is None and failed_in_dataset(e):
            diagnose_datasets(cfg, ['test_dataloader'])
        raise


def main(argv=None):
    args = parse_args(argv)
    return run_cli('test.py', lambda: test(args), debug=args.debug)


if __name__ == '__main__':
    main()
