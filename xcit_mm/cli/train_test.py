"""The options of ``tools/train.py`` and ``tools/test.py`` and what each one
sets in the config.

Only an option the user passes changes the config, and each changes the
key it names (as mmpretrain's, mmdet's and mmseg's own tools do); without
options the config runs exactly as written, so the same config gives the
same run under any of those tools. What the run does beyond mmengine's
defaults (the runner, the loops, the hooks, the image loader) is in the
config's runtime base, where ``tools/misc/print_config.py`` shows it.
"""
import os
import os.path as osp
from typing import Any, List

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from xcit_mm.cli.amp import select_amp_dtype
from xcit_mm.cli.config_checks import apply_common_args, check_checkpoint_paths
from xcit_mm.cli.report import explain_exception, failed_in_dataset
from xcit_mm.datasets.checks import check_data_paths, diagnose_datasets
from xcit_mm.runtime.launch import check_launcher_env
from xcit_mm.utils.errors import ConfigError, MissingFileError

LAUNCHERS = ['none', 'pytorch', 'slurm', 'mpi']

#: How each library's visualization hook is told to draw and where.
VIS_HOOK_KEYS = {
    'VisualizationHook': dict(enable=True, out_dir='{}'),  # mmpretrain
    'DetVisualizationHook': dict(draw=True, test_out_dir='{}'),  # mmdet
    'SegVisualizationHook': dict(draw=True),  # mmseg: under work_dir
}


def add_launcher_args(parser) -> None:
    parser.add_argument('--work-dir', help='where to save logs and models')
    parser.add_argument('--launcher', default='none', choices=LAUNCHERS,
                        help='job launcher')
    # torchrun sets LOCAL_RANK; torch.distributed.launch passes --local-rank
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)


def add_train_args(parser) -> None:
    """``--resume``, ``--amp``, ``--auto-scale-lr``, ``--no-validate`` and
    the launcher options."""
    add_launcher_args(parser)
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the newest complete checkpoint of the work dir '
        'when no path is given (starting from load_from when there is '
        'none), else from PATH')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (bf16 where the GPU '
                        'supports it, else fp16 with dynamic loss scaling; '
                        'on the CPU bf16 autocast)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by total batch / '
                        'auto_scale_lr.base_batch_size')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')


def _amp_dtype() -> str:
    """bf16 where this rank's GPU computes it natively, else fp16."""
    import torch
    device = 'cpu'
    if torch.cuda.is_available():  # no CUDA context is created here
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
        device = f'cuda:{local_rank % torch.cuda.device_count()}'
    return select_amp_dtype(device)


def apply_amp(cfg: Config) -> None:
    """``--amp``: mmengine's ``AmpOptimWrapper`` on a GPU, bf16 autocast
    (``xcit_mm.AutocastOptimWrapper``) on the CPU."""
    import torch
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
        raise ConfigError(
            f'--amp needs optim_wrapper.type OptimWrapper or AmpOptimWrapper; '
            f'the config has {wrapper!r}. Drop --amp, or set the mixed '
            'precision in that wrapper.')
    if not torch.cuda.is_available():
        cfg.optim_wrapper.type = 'xcit_mm.AutocastOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
        cfg.optim_wrapper.pop('loss_scale', None)
        print_log('--amp on the CPU: bf16 autocast '
                  '(xcit_mm.AutocastOptimWrapper).', logger='current')
        return
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('dtype', _amp_dtype())
    if cfg.optim_wrapper.dtype == 'float16':
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def apply_train_args(cfg: Config, args: Any) -> List[str]:
    """Set what the training options ask for; return the data loader keys
    the run uses (after checking that their data and the checkpoints
    exist)."""
    check_launcher_env(args.launcher)
    apply_common_args(cfg, args)
    if args.amp:
        apply_amp(cfg)
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise ConfigError('--auto-scale-lr needs `auto_scale_lr = dict('
                              'base_batch_size=N)` in the config.')
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.resume == 'auto':
        cfg.resume = 'auto'  # xcit_mm.Runner: newest complete checkpoint
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    loaders = ['train_dataloader'] + (
        ['val_dataloader'] if cfg.get('val_cfg') else [])
    load_from = cfg.get('load_from')
    if load_from and '://' not in load_from and not osp.isfile(load_from):
        what = 'resume from' if cfg.get('resume') is True else 'load_from'
        raise MissingFileError(
            f'The {what} checkpoint {load_from!r} does not exist. Check the '
            'path, train or convert that checkpoint first '
            '(tools/model_converters/xcit2mm.py), or pass another with '
            '--cfg-options load_from=PATH; --resume without a path takes '
            'the newest complete checkpoint of the work dir.')
    check_checkpoint_paths(cfg)
    check_data_paths(cfg, loaders)
    return loaders


def add_test_args(parser) -> None:
    """``checkpoint``, ``--out``, ``--show-dir``, ``--tta`` and the
    launcher options."""
    parser.add_argument('checkpoint', help='checkpoint file')
    add_launcher_args(parser)
    parser.add_argument('--out', help='dump predictions to this .pkl file')
    parser.add_argument('--show-dir',
                        help='save drawn predictions in this directory')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (needs tta_model and '
                        'tta_pipeline in the config)')


def enable_show_dir(cfg: Config, show_dir: str) -> None:
    """``--show-dir``: the task's visualization hook draws every test image
    into ``show_dir``."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    name = hook.get('type', '').split('.')[-1] if hook else None
    if name not in VIS_HOOK_KEYS:
        raise ConfigError('--show-dir needs a VisualizationHook, '
                          'DetVisualizationHook or SegVisualizationHook in '
                          'default_hooks.visualization of the config.')
    for key, value in VIS_HOOK_KEYS[name].items():
        hook[key] = value.format(show_dir) if isinstance(value, str) \
            else value
    # every test image (mmpretrain's hook draws one in `interval`, 5000 by
    # default; mmseg's one in 50)
    hook['interval'] = 1
    if name == 'SegVisualizationHook':
        # mmseg saves drawings under <work_dir>/<timestamp>/vis_data
        cfg.visualizer.vis_backends = [
            dict(type='LocalVisBackend', save_dir=show_dir)
        ]


def check_has_test_loop(cfg: Config, config: str) -> None:
    """Refuse a config without ``test_dataloader``, ``test_cfg`` and
    ``test_evaluator`` (a pre-training config, e.g. DINO) before anything
    is built; mmengine would build the whole model to say that its test
    loop is None."""
    missing = [k for k in ('test_dataloader', 'test_cfg', 'test_evaluator')
               if cfg.get(k) is None]
    if not missing:
        return
    model = str((cfg.get('model') or {}).get('type', ''))
    if model.split('.')[-1] == 'DINO':
        raise ConfigError(
            f'{config} is a DINO pre-training config: it has no '
            f'{" / ".join(missing)}, because a DINO model has no labels to '
            'predict. Evaluate its checkpoint with DINO\'s k-NN: python '
            f'tools/analysis_tools/knn_eval.py {config} CHECKPOINT, or '
            'train a linear probe on its frozen backbone with a '
            'configs/dino/benchmarks/*_linear-*.py config, whose '
            'model.backbone.init_cfg.checkpoint names the DINO checkpoint '
            '(it reads the teacher\'s backbone).')
    raise ConfigError(
        f'{config} has no {" / ".join(missing)}, so tools/test.py has '
        'nothing to evaluate. Add them to the config (its base '
        'configs/_base_/datasets/*.py define them for each data set), or '
        'test with a config that has them.')


def apply_test_args(cfg: Config, args: Any) -> List[str]:
    """Set what the test options ask for; return the data loader keys."""
    check_launcher_env(args.launcher)
    check_has_test_loop(cfg, args.config)
    apply_common_args(cfg, args)
    cfg.load_from = args.checkpoint
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise MissingFileError(
            f'CHECKPOINT {args.checkpoint} does not exist. Pass the .pth that '
            'training wrote (work_dirs/<config>/epoch_N.pth), or convert '
            'official / timm XCiT weights with '
            'tools/model_converters/xcit2mm.py.')
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
    check_data_paths(cfg, ['test_dataloader'])
    return ['test_dataloader']


def build_and_run(cfg: Config, loaders: List[str], method: str) -> Any:
    """Build the Runner the config names (``runner_type``, else mmengine's)
    and call ``method`` (``'train'`` or ``'test'``); a failure inside a data
    set is explained from its files."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    try:
        runner = (RUNNERS.build(cfg) if 'runner_type' in cfg
                  else Runner.from_cfg(cfg))
        return getattr(runner, method)()
    except Exception as e:
        if explain_exception(e) is None and failed_in_dataset(e):
            diagnose_datasets(cfg, loaders)
        raise
