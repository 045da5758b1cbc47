"""Elastic restart: ``MAX_RESTARTS=1 tools/dist_train.sh`` with 2 processes
(gloo, CPU) of an iteration-based run whose augmentation runs in a
data-loader worker; rank 1 is SIGKILLed before iteration 5 (the last
checkpoint is ``iter_3``, in the middle of the second pass over the data).
torchrun restarts both processes, ``tools/train.py`` resumes from
``iter_3`` by itself, and the final weights equal, bit for bit, those of an
uninterrupted 2-process run started alongside."""
import os.path as osp
import socket
import subprocess

import torch

from tests.faults import tiny_train_cfg
from tests.utils import REPO, make_image_folder, tool_env, write_config

MAX_ITERS = 6  # 16 images, 2 processes x batch 4: 2 batches per pass


def _config(root, name, data, *hooks):
    cfg = tiny_train_cfg(data, iter_ckpt_interval=3, num_workers=1,
                         extra_hooks=hooks)
    cfg.update(
        train_cfg=dict(type='xcit_mm.ResumableIterBasedTrainLoop',
                       max_iters=MAX_ITERS),
        param_scheduler=[dict(type='CosineAnnealingLR', by_epoch=False,
                              T_max=MAX_ITERS, begin=0, end=MAX_ITERS)],
        log_processor=dict(by_epoch=False))
    cfg['default_hooks']['checkpoint'] = dict(
        type='xcit_mm.AtomicCheckpointHook', by_epoch=False,
        interval=MAX_ITERS)
    return write_config(str(root / f'{name}.py'), cfg)


def _free_ports(n):
    """``n`` distinct free ports (held together while they are picked)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _launch(cfg, work, port, **env):
    log = open(f'{work}.log', 'w')
    return subprocess.Popen(
        ['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', work],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        env=tool_env(PORT=str(port), XCIT_MM_CPU='1',
                     OMP_NUM_THREADS='1', **env))


def test_killed_rank_restarts_and_resumes_exactly(tmp_path):
    data = make_image_folder(str(tmp_path / 'data'), per_class=8)
    marker = str(tmp_path / 'killed')
    full_dir, work_dir = str(tmp_path / 'full'), str(tmp_path / 'work')
    ports = _free_ports(2)
    full = _launch(_config(tmp_path, 'full', data), full_dir, ports[0])
    elastic = _launch(
        _config(tmp_path, 'elastic', data,
                dict(type='TestKillRankOnceHook', iteration=5, rank=1,
                     marker=marker)), work_dir, ports[1], MAX_RESTARTS='1')
    rc = dict(elastic=elastic.wait(timeout=400), full=full.wait(timeout=400))
    log = open(f'{work_dir}.log').read()
    assert rc['full'] == 0, open(f'{full_dir}.log').read()[-3000:]
    assert rc['elastic'] == 0, log[-3000:]
    assert osp.exists(marker)  # rank 1 was killed once
    assert 'Restarted by torchrun (restart 1): resuming.' in log
    assert log.count('Restarted by torchrun (restart 1): resuming.') == 2
    assert ('Resumed at iteration 3: pass 2 of the data, skipped its first '
            '1 batches') in log  # rank 0 logs for both
    name = f'iter_{MAX_ITERS}.pth'
    a = torch.load(osp.join(full_dir, name), weights_only=False)
    b = torch.load(osp.join(work_dir, name), weights_only=False)
    assert a['meta']['iter'] == b['meta']['iter'] == MAX_ITERS
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
