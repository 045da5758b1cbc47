"""DINO's weighted k-NN evaluation of a frozen backbone.

    python tools/analysis_tools/knn_eval.py CONFIG [CHECKPOINT]
        [--model-key teacher|student] [--random-init] [--k 10 20 100 200]
        [--temperature 0.07] [--out RESULT.json] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

CONFIG is a DINO config (configs/dino/): its ``model`` is built and its
``knn_train_dataloader`` (the labelled memory bank: training images with
the evaluation pipeline) and ``knn_val_dataloader`` (the images to classify)
are read. CHECKPOINT is a DINO checkpoint from ``tools/train.py`` or
``tools/model_converters/dino2mm.py`` (loaded strictly); ``--random-init``
evaluates the model as initialised instead (seed from the config).

Features are the class tokens of the frozen backbone in eval mode (the
teacher's by default, as DINO reports), L2-normalised; each query's ``k``
most cosine-similar training images vote with weight exp(sim / T). Prints
top-1 / top-5 for every ``k``. Multi-process runs (``tools/dist_test.sh``-
style torchrun with ``--launcher pytorch``) split the extraction and the
vote (:func:`xcit_mm.evaluation.evaluate_knn`); on GPUs both run there.
"""
import argparse
import json
import os
import os.path as osp

from mmengine.config import Config

from xcit_mm.cli import add_config_args, load_config, run_cli
from xcit_mm.utils.errors import ConfigError, MissingFileError
from xcit_mm.utils.state_dict import load_checked


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='DINO config file')
    parser.add_argument('checkpoint', nargs='?', help='DINO checkpoint')
    add_config_args(parser, config=False)
    parser.add_argument('--model-key', default='teacher',
                        choices=['teacher', 'student'],
                        help='whose backbone to evaluate')
    parser.add_argument('--random-init', action='store_true',
                        help='evaluate the initialised model (no checkpoint)')
    parser.add_argument('--k', type=int, nargs='+',
                        default=[10, 20, 100, 200])
    parser.add_argument('--temperature', type=float, default=0.07)
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_model(cfg: Config, checkpoint, random_init: bool):
    from mmengine.registry import MODELS
    from mmengine.runner.utils import set_random_seed

    seed = (cfg.get('randomness') or {}).get('seed')
    set_random_seed(0 if seed is None else seed)
    model = MODELS.build(cfg.model)
    if random_init:
        model.init_weights()
        return model
    # read with weights_only=True and xcit_mm's allow-list, checked
    load_checked(model, checkpoint, what='the model of the config',
                 hint='Use the config the checkpoint was trained with; '
                 'convert official DINO files with '
                 'tools/model_converters/dino2mm.py.')
    return model


def knn_eval(args) -> dict:
    import torch
    from mmengine.dist import get_dist_info, init_dist, is_distributed
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from xcit_mm.evaluation import evaluate_knn
    from xcit_mm.runtime.launch import setup_cpu_distributed

    if (args.checkpoint is None) == (not args.random_init):
        raise ConfigError('Give a CHECKPOINT, or --random-init to evaluate '
                          'the initialised model (not both).')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        raise MissingFileError(f'The checkpoint {args.checkpoint} does not '
                               'exist.')
    cfg = load_config(args)
    for key in ('knn_train_dataloader', 'knn_val_dataloader'):
        if key not in cfg:
            raise ConfigError(
                f'{args.config} has no `{key}`. k-NN evaluation needs '
                '`knn_train_dataloader` (training images, evaluation '
                'pipeline, labels) and `knn_val_dataloader` (the images to '
                'classify); configs/dino/dino_xcit-digits_demo.py has '
                'both.')
    cfg.launcher = args.launcher
    # on the CPU, and after a torchrun restart, setup_cpu_distributed has
    # started the process group; mmengine's init_dist would start it twice
    if args.launcher != 'none' and not setup_cpu_distributed(cfg) and \
            not is_distributed():
        init_dist(args.launcher, **cfg.get('env_cfg', {}).get(
            'dist_cfg', {}))
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))

    model = load_model(cfg, args.checkpoint, args.random_init)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model.to(device)
    backbone = model.teacher['backbone'] if args.model_key == 'teacher' \
        else model.backbone
    seed = (cfg.get('randomness') or {}).get('seed')
    loaders = [Runner.build_dataloader(cfg[key], seed=seed)
               for key in ('knn_train_dataloader', 'knn_val_dataloader')]
    knn = evaluate_knn(backbone, model.data_preprocessor, *loaders,
                       ks=args.k, temperature=args.temperature)
    results = knn.accuracy
    rank, _ = get_dist_info()
    if rank == 0:
        what = 'random init' if args.random_init else args.checkpoint
        print(f'k-NN ({args.model_key} backbone, {what}; '
              f'{knn.num_train} train / {knn.num_val} val images, '
              f'T={args.temperature}, {knn.dim}-d features)')
        for k, (top1, top5) in results.items():
            print(f'  k={k:<4d} top-1 {top1:6.2f}  top-5 {top5:6.2f}')
        if args.out:
            with open(args.out, 'w') as f:
                json.dump({f'k{k}': dict(top1=t1, top5=t5)
                           for k, (t1, t5) in results.items()}, f, indent=2)
    return results


def main(argv=None):
    args = parse_args(argv)
    return run_cli('knn_eval.py', lambda: knn_eval(args), debug=args.debug)


if __name__ == '__main__':
    main()
