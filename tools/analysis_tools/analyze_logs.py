"""Plot training curves and time training from mmengine's JSON logs.

    python tools/analysis_tools/analyze_logs.py plot_curve LOG [LOG ...]
        --keys loss accuracy/top1 [--legend A B] [--title T] --out FILE.png
    python tools/analysis_tools/analyze_logs.py cal_train_time LOG [LOG ...]
        [--include-outliers]

LOG is the JSON log that mmengine (0.10.x) writes for every run,
``WORK_DIR/<timestamp>/vis_data/<timestamp>.json`` (``scalars.json`` beside
it has the same lines), or a work dir / timestamp dir, whose latest log is
then used. Every line is one logging step: training lines carry ``lr`` and
``iter`` (plus ``epoch`` for epoch-based runs), validation lines carry the
metrics (``accuracy/top1``, ``coco/bbox_mAP``, ``mIoU``, ...) and ``step``
(the epoch or iteration of the evaluation).

``plot_curve`` draws one panel per key, with one line per log, against
epochs (epoch-based runs) or iterations (iteration-based runs such as the
mmseg configs). ``cal_train_time`` prints the mean time per
iteration (and per epoch, with the slowest and fastest), leaving out the first
iteration of each epoch (data-loader start-up) unless ``--include-outliers``.
This is a lean version of mmpretrain's tool of the same name, for the logs
of all three tasks.
"""
import argparse
import glob
import json
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np


def find_json_log(path: str) -> str:
    """The JSON log for a file, a timestamp dir or a work dir (latest)."""
    if osp.isfile(path):
        return path
    if osp.isdir(path):
        candidates = sorted(
            glob.glob(osp.join(path, 'vis_data', '*.json')) +
            glob.glob(osp.join(path, '*', 'vis_data', '*.json')))
        # prefer <timestamp>.json over scalars.json, the latest timestamp
        named = [c for c in candidates if osp.basename(c) != 'scalars.json']
        if named or candidates:
            return (named or candidates)[-1]
    raise FileNotFoundError(
        f'No mmengine JSON log at {path!r}: expected a .json file or a work '
        'dir containing <timestamp>/vis_data/<timestamp>.json.')


def short_name(path: str) -> str:
    """``WORK_DIR/<ts>/vis_data/<ts>.json`` -> ``work_dir_name/<ts>``."""
    parts = osp.abspath(path).split(osp.sep)
    stem = osp.splitext(parts[-1])[0]
    if len(parts) >= 4 and parts[-2] == 'vis_data':
        return f'{parts[-4]}/{parts[-3]}'
    return stem


def load_json_log(path: str) -> Dict[str, List[dict]]:
    """Split an mmengine JSON log into ``{'train': [...], 'val': [...]}``.

    Each validation line also gets ``_after_iter``: the training iteration
    logged just before it (None before any). An iteration-based run with
    the LoggerHook default ``log_metric_by_epoch=True`` writes ``step: 0``
    for its evaluations; this places them on the iteration axis. Blank and
    malformed lines (a run killed mid-write) are skipped.
    """
    log = dict(train=[], val=[])
    last_iter = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if 'lr' in entry or 'iter' in entry:
                log['train'].append(entry)
                last_iter = entry.get('iter', entry.get('step'))
            else:
                entry['_after_iter'] = last_iter
                log['val'].append(entry)
    if not log['train'] and not log['val']:
        raise ValueError(f'{path!r} has no mmengine log lines.')
    return log


def available_keys(log: Dict[str, List[dict]]) -> Dict[str, List[str]]:
    skip = {'step', 'epoch', 'iter', '_after_iter'}
    out = {}
    for mode in ('train', 'val'):
        keys = OrderedDict()
        for entry in log[mode]:
            for k, v in entry.items():
                if k not in skip and isinstance(v, (int, float)):
                    keys[k] = None
        out[mode] = list(keys)
    return out


def _iters_per_epoch(train: List[dict]) -> Optional[float]:
    """Iterations per epoch of an epoch-based run (None if iteration-based),
    from the last training line, as mmpretrain's tool does."""
    last = next((e for e in reversed(train) if 'epoch' in e), None)
    if last is None:
        return None
    return last.get('iter', last['step']) / last['epoch']


def curve(log: Dict[str, List[dict]], key: str):
    """(xs, ys, x label) of one key; validation keys win over training.

    x is in epochs for epoch-based runs and in iterations otherwise, for
    training and validation keys alike.
    """
    keys = available_keys(log)
    per_epoch = _iters_per_epoch(log['train'])
    unit = 'epoch' if per_epoch else 'iter'
    if key in keys['val']:
        entries = [e for e in log['val'] if key in e]
        steps = np.array([e['step'] for e in entries], float)
        if not log['train']:  # a test-only log
            xs, unit = steps, 'step'
        elif per_epoch:
            # mmengine writes the epoch (LoggerHook(log_metric_by_epoch=
            # True), the default) or else the iteration
            max_epoch = max(e['epoch'] for e in log['train'] if 'epoch' in e)
            xs = steps / per_epoch if steps.max() > max_epoch else steps
        else:
            # the iteration (log_metric_by_epoch=False, as mmseg sets), or
            # 0 by default: then the training iteration logged before it
            xs = np.array([
                e['step'] or (e['_after_iter'] or 0) for e in entries
            ], float)
    elif key in keys['train']:
        entries = [e for e in log['train'] if key in e]
        xs = np.array([e.get('iter', e['step']) for e in entries], float)
        xs = xs / per_epoch if per_epoch else xs
    else:
        raise KeyError(f'Key {key!r} is not in the log. Training keys: '
                       f'{keys["train"]}; validation keys: {keys["val"]}.')
    return xs, np.array([e[key] for e in entries], dtype=float), unit


def plot_curve(logs: List[Dict], names: List[str], keys: List[str],
               out: str, legend: List[str] = None, title: str = None) -> str:
    """Save one panel per key, one line per log, to ``out``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if legend is not None and len(legend) != len(logs):
        raise ValueError(f'--legend needs one name per log ({len(logs)}), '
                         f'got {len(legend)}.')
    legend = legend or [short_name(n) for n in names]
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 3 * len(keys)),
                             squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        curves = [curve(log, key) for log in logs]
        units = sorted({unit for _, _, unit in curves})
        for (xs, ys, unit), label in zip(curves, legend):
            if len(units) > 1:  # logs of epoch- and iteration-based runs
                label = f'{label} [{unit}]'
            marker = 'o' if len(xs) < 30 else None
            ax.plot(xs, ys, label=label, linewidth=1, marker=marker,
                    markersize=3)
        ax.set_xlabel(' / '.join(units))
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def train_time(log: Dict[str, List[dict]],
               include_outliers: bool = False) -> dict:
    """Mean seconds per iteration, overall and per epoch."""
    entries = [e for e in log['train'] if 'time' in e]
    if not entries:
        raise ValueError('The log has no training iterations with `time`.')
    result = dict(num_logged_iters=len(entries))
    if 'epoch' in entries[0]:
        per_epoch = OrderedDict()
        for e in entries:
            per_epoch.setdefault(e['epoch'], []).append(e['time'])
        means = OrderedDict(
            (ep, float(np.mean(t if include_outliers or len(t) == 1 else
                               t[1:]))) for ep, t in per_epoch.items())
        times = [t for ts in per_epoch.values()
                 for t in (ts if include_outliers or len(ts) == 1 else
                           ts[1:])]
        result.update(
            epoch_mean_time=means,
            slowest_epoch=max(means, key=means.get),
            fastest_epoch=min(means, key=means.get),
            std_over_epochs=float(np.std(list(means.values()))))
    else:
        times = [e['time'] for e in entries]
        if not include_outliers and len(times) > 1:
            times = times[1:]
    result['mean_iter_time'] = float(np.mean(times))
    data = [e['data_time'] for e in entries if 'data_time' in e]
    if data:
        result['mean_data_time'] = float(np.mean(data))
    return result


def cal_train_time(logs: List[Dict], names: List[str],
                   include_outliers: bool = False) -> List[dict]:
    results = []
    for log, name in zip(logs, names):
        r = train_time(log, include_outliers)
        print(f'----- train time of {name} -----')
        if 'epoch_mean_time' in r:
            ep = r['epoch_mean_time']
            print(f'slowest epoch {r["slowest_epoch"]}, average time is '
                  f'{ep[r["slowest_epoch"]]:.4f} s/iter')
            print(f'fastest epoch {r["fastest_epoch"]}, average time is '
                  f'{ep[r["fastest_epoch"]]:.4f} s/iter')
            print(f'time std over epochs is {r["std_over_epochs"]:.4f}')
        print(f'average iter time: {r["mean_iter_time"]:.4f} s/iter')
        if 'mean_data_time' in r:
            print(f'average data time: {r["mean_data_time"]:.4f} s/iter')
        results.append(r)
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Analyse mmengine JSON logs')
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='plot curves of log keys')
    plot.add_argument('json_logs', nargs='+',
                      help='JSON logs (or work dirs) to plot')
    plot.add_argument('--keys', nargs='+', default=['loss'],
                      help='keys to plot, one panel each (default: loss)')
    plot.add_argument('--legend', nargs='+', help='one name per log')
    plot.add_argument('--title', help='figure title')
    plot.add_argument('--out', required=True, help='output image (.png)')
    timing = sub.add_parser('cal_train_time',
                            help='mean time per training iteration')
    timing.add_argument('json_logs', nargs='+',
                        help='JSON logs (or work dirs)')
    timing.add_argument('--include-outliers', action='store_true',
                        help='keep the first iteration of each epoch')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        paths = [find_json_log(p) for p in args.json_logs]
        logs = [load_json_log(p) for p in paths]
        if args.task == 'plot_curve':
            out = plot_curve(logs, paths, args.keys, args.out, args.legend,
                             args.title)
            print(f'saved {out}')
        else:
            cal_train_time(logs, paths, args.include_outliers)
    except (FileNotFoundError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) else e
        print(f'analyze_logs: error: {msg}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
