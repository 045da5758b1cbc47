"""Check a training run for memory and file-descriptor leaks.

    python tools/analysis_tools/check_leaks.py [CONFIG] [--epochs 20]
        [--num-workers 2] [--work-dir DIR]
        [--max-growth-mb 64] [--max-fd-growth 2]

Trains with ``num_workers`` data-loader workers and ``persistent_workers``
(so the same workers serve every epoch) and samples, at the end of every
epoch, the RSS and PSS of the main process and of the workers and
their open file descriptors (``xcit_mm.ResourceMonitorHook``, Linux
``/proc``). Prints the samples, the growth after the first epoch (warm-up:
allocator pools, worker start-up, page cache of the images) and a verdict;
exits with 1 when memory grows by more than ``--max-growth-mb`` (or 5% of
the warm memory) or descriptors by more than ``--max-fd-growth``.

Without CONFIG it trains a tiny XCiT on a generated image folder (in a
temporary directory) with random crops and flips; with CONFIG, that
config's model and training data.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
from typing import Dict, List, Optional

import numpy as np


def tiny_config(data_root: str, work_dir: str, epochs: int,
                num_workers: int) -> dict:
    """Tiny XCiT on ``data_root`` (an ImageNet-style folder)."""
    pipeline = [
        dict(type='xcit_mm.LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=32),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]
    return dict(
        default_scope='mmpretrain',
        work_dir=work_dir,
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='xcit_mm.XCiT',
                          arch=dict(embed_dims=32, depth=2, num_heads=2)),
            head=dict(type='LinearClsHead', num_classes=4, in_channels=32),
            data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3,
                                   to_rgb=True)),
        train_dataloader=dict(
            batch_size=8, num_workers=num_workers,
            persistent_workers=num_workers > 0,
            dataset=dict(type='CustomDataset', data_root=data_root,
                         pipeline=pipeline),
            sampler=dict(type='DefaultSampler', shuffle=True)),
        train_cfg=dict(type='xcit_mm.ResumableEpochBasedTrainLoop',
                       max_epochs=epochs),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1000),
                           checkpoint=None),
        randomness=dict(seed=0),
        log_level='WARNING')


def make_images(root: str, classes: int = 4, per_class: int = 8,
                size: int = 48) -> str:
    import cv2
    rng = np.random.default_rng(0)
    for c in range(classes):
        os.makedirs(osp.join(root, f'class_{c}'), exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(osp.join(root, f'class_{c}', f'{i}.jpg'),
                        rng.integers(0, 255, (size, size, 3), np.uint8))
    return root


def analyse(samples: List[Dict], iters_per_epoch: int,
            max_growth_mb: float = 64., max_fd_growth: int = 2) -> Dict:
    """Growth after the first epoch, a least-squares slope, a verdict."""
    # the first epoch is warm-up: worker start, allocator pools, page cache
    warm = [s for s in samples if s['iter'] > iters_per_epoch] or samples
    first, last = warm[0], warm[-1]
    # RSS, not PSS: the PSS of shared libraries moves whenever another
    # process on the machine maps them
    mem = 'total_rss_mb'
    fds = [s['main_fds'] + s['workers_fds'] for s in warm]
    growth = last[mem] - first[mem]
    if len(warm) > 1:
        x = np.array([s['iter'] for s in warm], float)
        slope = float(np.polyfit(x, [s[mem] for s in warm], 1)[0]) * 100
    else:
        slope = 0.
    allowed = max(max_growth_mb, 0.05 * first[mem])
    return dict(
        warm_iter=first['iter'], last_iter=last['iter'],
        warm_mb=first[mem], last_mb=last[mem], growth_mb=growth,
        slope_mb_per_100_iters=slope, allowed_mb=allowed,
        fd_growth=fds[-1] - fds[0], workers=[s['workers'] for s in samples],
        worker_pids_stable=len({s['worker_pids'] for s in samples}) == 1,
        ok=growth <= allowed and fds[-1] - fds[0] <= max_fd_growth)


def measure(config: Optional[str] = None, epochs: int = 20,
            num_workers: int = 2,
            work_dir: Optional[str] = None, max_growth_mb: float = 64.,
            max_fd_growth: int = 2) -> Dict:
    """Train and sample; returns ``dict(samples=[...], **analyse(...))``."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from xcit_mm.runtime import ResourceMonitorHook
    tmp = tempfile.TemporaryDirectory()
    work_dir = work_dir or osp.join(tmp.name, 'work')
    if config is None:
        cfg = Config(tiny_config(make_images(osp.join(tmp.name, 'images')),
                                 work_dir, epochs, num_workers))
    else:
        cfg = Config.fromfile(config)
        cfg.work_dir = work_dir
        cfg.train_dataloader.num_workers = num_workers
        cfg.train_dataloader.persistent_workers = num_workers > 0
        cfg.train_cfg = dict(type='xcit_mm.ResumableEpochBasedTrainLoop',
                             max_epochs=epochs)
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
        cfg.default_hooks.checkpoint = None
    runner = Runner.from_cfg(cfg)
    hook = ResourceMonitorHook(by_epoch=True, log=False)
    runner.register_hook(hook)
    runner.train()
    result = analyse(hook.samples, len(runner.train_dataloader),
                     max_growth_mb, max_fd_growth)
    result.update(samples=hook.samples,
                  iters_per_epoch=len(runner.train_dataloader))
    del runner
    tmp.cleanup()
    return result


def print_report(result: Dict) -> None:
    print(f'{"iter":>6} {"epoch":>5} {"main RSS":>9} {"workers":>7} '
          f'{"wrk RSS":>8} {"sum RSS":>8} {"sum PSS":>8} {"fds":>8}')
    for s in result['samples']:
        print(f'{s["iter"]:>6} {s["epoch"]:>5} {s["main_rss_mb"]:>8.1f}M '
              f'{s["workers"]:>7} {s["workers_rss_mb"]:>7.1f}M '
              f'{s["total_rss_mb"]:>7.1f}M {s["total_pss_mb"]:>7.1f}M '
              f'{s["main_fds"]:>4}+{s["workers_fds"]:<3}')
    print(f'after warm-up (iter {result["warm_iter"]} -> '
          f'{result["last_iter"]}): main + workers RSS '
          f'{result["warm_mb"]:.1f} -> '
          f'{result["last_mb"]:.1f} MiB ({result["growth_mb"]:+.1f} MiB, '
          f'slope {result["slope_mb_per_100_iters"]:+.2f} MiB / 100 iters, '
          f'allowed {result["allowed_mb"]:.0f}); open fds '
          f'{result["fd_growth"]:+d}; the same worker processes in every '
          f'epoch: {result["worker_pids_stable"]}')
    print('verdict:', 'no leak' if result['ok'] else 'LEAK')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='config (default: tiny)')
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--work-dir')
    parser.add_argument('--max-growth-mb', type=float, default=64.)
    parser.add_argument('--max-fd-growth', type=int, default=2)
    args = parser.parse_args(argv)
    if not os.path.isdir('/proc/self/task'):
        print('check_leaks.py reads /proc: Linux only.', file=sys.stderr)
        return 2
    result = measure(args.config, args.epochs, args.num_workers,
                     args.work_dir, args.max_growth_mb, args.max_fd_growth)
    print_report(result)
    return 0 if result['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
