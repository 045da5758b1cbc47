"""Record the memory and open files of the training process and its data
loader workers, to find leaks."""
import os
from typing import Dict, List

from mmengine.hooks import Hook

from xcit_mm.registry import HOOKS


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def children(pid: int) -> List[int]:
    """All descendants of ``pid`` (Linux ``/proc``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f'/proc/{p}/task')
        except OSError:
            continue
        for t in tasks:
            try:
                kids = [int(c) for c in
                        _read(f'/proc/{p}/task/{t}/children').split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def process_usage(pid: int) -> Dict[str, float]:
    """RSS and PSS in MiB and the number of open file descriptors.

    PSS (proportional set size) splits pages shared between the main
    process and its forked workers among them, so the PSS of a process
    tree adds up to the memory it really uses; RSS counts shared pages in
    each process.
    """
    usage = dict(rss_mb=0., pss_mb=0., fds=0)
    try:
        for line in _read(f'/proc/{pid}/smaps_rollup').splitlines():
            key, _, rest = line.partition(':')
            if key in ('Rss', 'Pss'):
                usage[f'{key.lower()}_mb'] = int(rest.split()[0]) / 1024
        usage['fds'] = len(os.listdir(f'/proc/{pid}/fd'))
    except OSError:  # the process just exited
        pass
    return usage


def tree_usage(pid: int) -> Dict[str, float]:
    """:func:`process_usage` of ``pid`` and of all its workers."""
    main = process_usage(pid)
    pids = children(pid)
    kids = [process_usage(c) for c in pids]
    return dict(
        main_rss_mb=main['rss_mb'], main_pss_mb=main['pss_mb'],
        main_fds=main['fds'], workers=len(kids), worker_pids=tuple(pids),
        workers_rss_mb=sum(k['rss_mb'] for k in kids),
        workers_pss_mb=sum(k['pss_mb'] for k in kids),
        workers_fds=sum(k['fds'] for k in kids),
        total_rss_mb=main['rss_mb'] + sum(k['rss_mb'] for k in kids),
        total_pss_mb=main['pss_mb'] + sum(k['pss_mb'] for k in kids))


@HOOKS.register_module()
class ResourceMonitorHook(Hook):
    """Sample memory and open files of the training process tree.

    Each sample (main process and data-loader workers: RSS, PSS, open file
    descriptors) is kept in :attr:`samples` and logged. By default one
    sample is taken at the end of each epoch, always at the same phase of
    the data pipeline (mid-epoch, the workers hold extra shared-memory
    descriptors for prefetched batches). Linux only (reads ``/proc``);
    elsewhere it does nothing.

    Args:
        by_epoch (bool): Sample after each epoch. Defaults to True.
        interval (int): Otherwise, every ``interval`` iterations.
            Defaults to 50.
        log (bool): Log each sample. Defaults to True.
    """

    priority = 'LOWEST'

    def __init__(self, by_epoch: bool = True, interval: int = 50,
                 log: bool = True) -> None:
        self.by_epoch = by_epoch
        self.interval = interval
        self.log = log
        self.samples: List[Dict[str, float]] = []
        self.enabled = os.path.isdir('/proc/self/task')

    def _sample(self, runner, it: int, epoch: int) -> None:
        sample = dict(iter=it, epoch=epoch, **tree_usage(os.getpid()))
        self.samples.append(sample)
        if self.log:
            runner.logger.info(
                'resources: main RSS {main_rss_mb:.1f} MiB, {workers} '
                'workers RSS {workers_rss_mb:.1f} MiB, total PSS '
                '{total_pss_mb:.0f} MiB, fds {main_fds}+{workers_fds}'.format(
                    **sample))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.enabled and not self.by_epoch and self.every_n_train_iters(
                runner, self.interval):
            self._sample(runner, runner.iter + 1, runner.epoch + 1)

    def after_train_epoch(self, runner) -> None:
        if self.enabled and self.by_epoch:
            self._sample(runner, runner.iter, runner.epoch + 1)
