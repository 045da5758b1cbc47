"""What a cluster does to a run, with real ``tools/dist_train.sh``
(torchrun) processes on the CPU (gloo).

One 2-process reference run (3 epochs of 2 iterations of 2 x 4 images,
drop path, random crops in a data-loader worker, per-iteration cosine lr,
iteration checkpoints every 3 iterations, ``epoch_3.pth`` at the end) is
started alongside:

- **elastic restart, one node**: ``MAX_RESTARTS=1``, rank 1 SIGKILLed
  before iteration 4 (the last checkpoint is ``iter_3``, mid epoch 2);
  torchrun restarts both processes, which resume by themselves;
- **two nodes**: two torchrun agents (``NNODES=2``, ``NODE_RANK=0/1``,
  ``MASTER_ADDR=127.0.0.1``, ``MASTER_PORT``), one process each; the
  process of node 1 is SIGKILLed before iteration 4 and both agents
  restart theirs;
- **preemption**: rank 1 receives SIGTERM during iteration 5 (mid epoch 3)
  and rank 0 another SIGTERM while it saves; both ranks stop after
  iteration 5, ``iter_5.pth`` is written, a fake ``scontrol`` on ``PATH``
  records the requeue, the processes exit with status 75; the "requeued"
  job (``SLURM_RESTART_COUNT=1``, no ``--resume``) resumes by itself from
  iteration 5 and re-runs no iteration.

Each of them ends with the weights of the reference, bit for bit. A run
resumed from the reference's ``iter_3`` on one process continues with the
same samples and learning rate when the global batch is kept, and stops
with what to do when it is not.
"""
import os
import os.path as osp
import socket
import stat
import subprocess

import pytest
import torch

from tests.faults import tiny_train_cfg
from tests.utils import REPO, make_image_folder, tool_env, write_config
from xcit_mm.runtime import PREEMPTED_EXIT_CODE, Runner
from xcit_mm.runtime.fileio import checkpoint_is_complete
from xcit_mm.utils.errors import ConfigError

ITERS = 6  # 16 images, 2 processes x batch 4: 2 iterations per epoch
RESTARTED = 'Restarted by torchrun (restart 1): resuming.'


def _cfg(root, data, order, *hooks, **preemption):
    """The reference config (+ fault hooks); ``order`` records the batches
    of every rank."""
    cfg = tiny_train_cfg(data, iter_ckpt_interval=3, max_keep_ckpts=2,
                         num_workers=1,
                         extra_hooks=[dict(type='TestRecordOrderHook',
                                           path=str(root / order)), *hooks])
    cfg['default_hooks']['preemption'].update(preemption)
    return cfg


def _free_ports(n):
    """``n`` distinct free ports (held together while they are picked)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _launch(root, name, cfg, port, procs=2, log=None, **env):
    path = write_config(str(root / f'{name}.py'), cfg)
    out = open(str(root / f'{log or name}.log'), 'a')
    return subprocess.Popen(
        ['bash', 'tools/dist_train.sh', path, str(procs), '--work-dir',
         str(root / name.split('-')[0])],
        cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        env=tool_env(XCIT_MM_CPU='1', OMP_NUM_THREADS='1',
                     **dict(dict(PORT=str(port)), **env)))


def _order(path):
    """iteration -> list of the batches recorded for it (one per rank and
    run of that iteration)."""
    out = {}
    for line in open(path):
        it, names = line.split(' ', 1)
        out.setdefault(int(it), []).append(names.split())
    return out


def _final(work_dir):
    return torch.load(osp.join(work_dir, 'epoch_3.pth'),
                      weights_only=False)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('cluster')
    data = make_image_folder(str(root / 'data'), per_class=8)
    bin_dir = root / 'bin'  # a fake scontrol that records its arguments
    bin_dir.mkdir()
    scontrol = bin_dir / 'scontrol'
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {root}/scontrol.txt\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    ports = _free_ports(4)
    kill = dict(type='TestKillRankOnceHook', iteration=4, rank=1)
    slurm = dict(SLURM_JOB_ID='4242',
                 PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    procs = dict(
        full=_launch(root, 'full', _cfg(root, data, 'full.txt'), ports[0]),
        elastic=_launch(
            root, 'elastic',
            _cfg(root, data, 'elastic.txt',
                 dict(kill, marker=str(root / 'killed1'))), ports[1],
            MAX_RESTARTS='1'),
        preempt=_launch(
            root, 'preempt',
            _cfg(root, data, 'preempt.txt',
                 dict(type='TestSendSignalHook', iteration=5, rank=1),
                 dict(type='TestSendSignalHook', iteration=5, rank=0,
                      during_save=True), requeue=True),
            ports[2], **slurm))
    two_nodes = _cfg(root, data, 'nodes.txt',
                     dict(kill, marker=str(root / 'killed2')))
    for node in (0, 1):
        procs[f'node{node}'] = _launch(
            root, f'nodes-{node}', two_nodes, 0, procs=1, log=f'node{node}',
            NNODES='2', NODE_RANK=str(node), MASTER_ADDR='127.0.0.1',
            MASTER_PORT=str(ports[3]), PORT='', MAX_RESTARTS='1')
    rc = {}
    rc['preempt'] = procs['preempt'].wait(timeout=400)
    left = dict(files=sorted(os.listdir(root / 'preempt')),
                pointer=open(root / 'preempt' / 'last_checkpoint').read())
    # the requeued job: same command, SLURM_RESTART_COUNT=1, no --resume
    requeued = _cfg(root, data, 'preempt.txt', requeue=True)
    rc['requeued'] = _launch(root, 'preempt-requeued', requeued, ports[2],
                             log='preempt', SLURM_RESTART_COUNT='1',
                             **slurm).wait(timeout=400)
    for name, proc in procs.items():
        rc.setdefault(name, proc.wait(timeout=400))
    logs = {p.stem: p.read_text() for p in root.glob('*.log')}
    return dict(root=root, rc=rc, logs=logs, left=left)


def _same_weights(runs, name):
    a = _final(str(runs['root'] / 'full'))
    b = _final(str(runs['root'] / name))
    assert a['meta']['iter'] == b['meta']['iter'] == ITERS
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k


def test_killed_rank_restarts_and_resumes_exactly(runs):
    rc, log = runs['rc'], runs['logs']['elastic']
    assert rc['full'] == 0, runs['logs']['full'][-3000:]
    assert rc['elastic'] == 0, log[-3000:]
    assert osp.exists(runs['root'] / 'killed1')  # rank 1 was killed once
    assert log.count(RESTARTED) == 1  # rank 0 logs
    assert ('Resumed in the middle of epoch 2: skipped its first 1 '
            'batches') in log  # rank 0 logs for both
    _same_weights(runs, 'elastic')


def test_two_nodes_restart_and_resume_exactly(runs):
    rc, logs = runs['rc'], runs['logs']
    for node in (0, 1):
        assert rc[f'node{node}'] == 0, logs[f'node{node}'][-3000:]
    assert osp.exists(runs['root'] / 'killed2')
    # node 0's agent restarted its process (which logs for both); the
    # restarted world of 2 could not form unless node 1's did too
    assert logs['node0'].count(RESTARTED) == 1
    assert 'Resuming from' in logs['node0'] and 'iter_3.pth' in logs['node0']
    _same_weights(runs, 'nodes')


def test_preempted_run_saves_requeues_and_loses_nothing(runs):
    root, rc, log = runs['root'], runs['rc'], runs['logs']['preempt']
    # both processes stopped after iteration 5 with status 75
    assert rc['preempt'] != 0, log[-3000:]
    assert log.count(f'exitcode  : {PREEMPTED_EXIT_CODE}') == 2, log[-3000:]
    assert ('Preempted (a signal to another rank) in iteration 5') in log
    left = runs['left']
    assert 'iter_5.pth' in left['files'] and 'iter_3.pth' in left['files']
    assert left['pointer'].endswith('iter_5.pth')
    assert not any('.tmp-' in n for n in left['files'])
    # the second SIGTERM during the save changed nothing: iter_5 is
    # complete and at iteration 5; requeued once, by rank 0
    assert (root / 'scontrol.txt').read_text() == 'requeue 4242\n'
    # the requeued job resumed by itself and ran iterations 6.. only
    assert rc['requeued'] == 0, log[-3000:]
    assert 'Restarted by Slurm (requeue 1): resuming.' in log
    assert 'Resuming from' in log and 'iter_5.pth' in log
    order = _order(root / 'preempt.txt')
    assert sorted(order) == list(range(1, ITERS + 1))
    assert all(len(b) == 2 for b in order.values())  # once on each rank
    # the preemption checkpoint went once a newer one was written
    assert not osp.exists(root / 'preempt' / 'iter_5.pth')
    assert checkpoint_is_complete(str(root / 'preempt' / 'iter_6.pth')) \
        is None
    _same_weights(runs, 'preempt')


def _resume_on_one_process(runs, work_dir, batch_size):
    """Resume the reference's iter_3 in this process (1 process)."""
    root = runs['root']
    cfg = _cfg(root, str(root / 'data'), f'{work_dir}.txt')
    for key in ('custom_imports', 'runner_type'):
        cfg.pop(key)
    cfg['train_dataloader'].update(batch_size=batch_size, num_workers=0,
                                   persistent_workers=False)
    cfg['log_level'] = 'WARNING'
    return Runner(work_dir=str(root / work_dir), resume=True,
                  load_from=str(root / 'full' / 'iter_3.pth'), **cfg)


def test_resume_on_fewer_processes_keeps_samples_and_schedules(runs):
    """2 processes x 4 images -> 1 x 8: the same global batches from
    iteration 4 on, the same learning rate at the end."""
    assert runs['rc']['full'] == 0
    layout = torch.load(runs['root'] / 'full' / 'iter_3.pth',
                        weights_only=False)['meta']['train_loader']
    assert layout == dict(world_size=2, batch_size=4, iters_per_epoch=2,
                          samples_per_epoch=16)
    runner = _resume_on_one_process(runs, 'one', 8)
    runner.train()
    full = _order(runs['root'] / 'full.txt')
    one = _order(runs['root'] / 'one.txt')
    assert sorted(one) == [4, 5, 6]
    for it, (batch, ) in one.items():
        assert sorted(batch) == sorted(full[it][0] + full[it][1]), it
    # epoch 2 (iterations 3, 4): each of the 16 images once
    epoch_1 = full[1][0] + full[1][1] + full[2][0] + full[2][1]
    assert sorted(full[3][0] + full[3][1] + one[4][0]) == sorted(epoch_1)
    assert len(set(epoch_1)) == 16
    a = _final(str(runs['root'] / 'full'))
    b = _final(str(runs['root'] / 'one'))
    assert b['meta']['iter'] == ITERS
    assert b['optimizer']['param_groups'][0]['lr'] == \
        a['optimizer']['param_groups'][0]['lr']


def test_resume_with_another_global_batch_says_what_to_do(runs):
    assert runs['rc']['full'] == 0
    runner = _resume_on_one_process(runs, 'other', 4)
    with pytest.raises(ConfigError) as e:
        runner.train()
    assert e.value.config_keys == ('train_dataloader.batch_size', )
    msg = str(e.value)
    assert '2 processes x 4 images per process (a global batch of 8' in msg
    assert 'train_dataloader.batch_size=8' in msg
    assert not osp.exists(runs['root'] / 'other' / 'epoch_3.pth')
