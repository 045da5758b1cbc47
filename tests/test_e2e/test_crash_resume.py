"""Crash and resume with real tools/train.py subprocesses.

One chain of runs on a tiny XCiT (3 epochs of 4 iterations, drop path,
random crops and flips, per-iteration cosine lr), iteration checkpoints
every 3 iterations with ``max_keep_ckpts=1``:

1. ``full``: never interrupted (in parallel with 2.);
2. SIGKILL just before iteration 8 (the middle of epoch 2; the last
   checkpoint is ``iter_6``);
3. ``--resume``: continues from ``iter_6`` and is killed by the kernel
   (SIGXFSZ, a file size limit) in the middle of writing ``iter_9``;
4. ``--resume``: ``iter_6`` and ``last_checkpoint`` survived 3., training
   continues from ``iter_6`` and ends with the weights of 1., bit for bit,
   having seen the same batches in the same order.

With mmengine's own loop and CheckpointHook, 4. would re-train the first
batches of epoch 2, and 3. would have deleted ``iter_6`` before writing
``iter_9``, leaving nothing to resume from.
"""
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest
import torch

from tests.faults import tiny_train_cfg
from tests.utils import REPO, make_image_folder, write_config

ITERS_PER_EPOCH = 4  # 16 images, batch 4
KILL_BEFORE = 8      # mid epoch 2; the last iteration checkpoint is iter_6


def _popen(cfg_path: str, work_dir: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1',
               MKL_NUM_THREADS='1')
    log = open(osp.join(osp.dirname(cfg_path), osp.basename(work_dir) +
                        '.log'), 'a')
    return subprocess.Popen(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg_path,
         '--work-dir', work_dir, *extra],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _order(path: str) -> dict:
    """iteration -> batch; a re-run iteration keeps its last record."""
    out = {}
    with open(path) as f:
        for line in f:
            it, names = line.split(' ', 1)
            out.setdefault(int(it), []).append(names.strip())
    return out


def _final_state(work_dir: str) -> dict:
    return torch.load(osp.join(work_dir, 'epoch_3.pth'),
                      weights_only=False)['state_dict']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('crash')
    data = make_image_folder(str(root / 'data'), per_class=8)

    def cfg(name, order, *hooks):
        extra = [dict(type='TestRecordOrderHook', path=str(root / order)),
                 *hooks]
        c = tiny_train_cfg(data, extra_hooks=extra)
        # checkpoints: every 3 iterations, keep 1; epoch_3.pth at the end
        c['default_hooks']['checkpoint'] = dict(
            type='xcit_mm.AtomicCheckpointHook', interval=100)
        return write_config(str(root / f'{name}.py'), c)

    work = str(root / 'work')
    full = _popen(cfg('full', 'full.txt'), str(root / 'full'))
    rc = dict(kill=_popen(
        cfg('kill', 'part.txt',
            dict(type='TestKillBeforeIterHook', iteration=KILL_BEFORE)),
        work).wait())
    left = dict(kill=sorted(os.listdir(work)))
    rc['save'] = _popen(
        cfg('save', 'part.txt',
            dict(type='TestDieWhileSavingHook', iteration=9)), work,
        '--resume').wait()
    left.update(save=sorted(os.listdir(work)),
                pointer=open(osp.join(work, 'last_checkpoint')).read())
    rc['resume'] = _popen(cfg('resume', 'part.txt'), work, '--resume').wait()
    rc['full'] = full.wait()
    return dict(root=root, rc=rc, left=left,
                log=(root / 'work.log').read_text())


def test_sigkill_mid_epoch(runs):
    assert runs['rc']['kill'] == -signal.SIGKILL, runs['log'][-3000:]
    # killed in epoch 2 after its checkpoint of iteration 6
    assert 'iter_6.pth' in runs['left']['kill']
    assert not any(n.startswith(('epoch_', 'iter_3'))
                   for n in runs['left']['kill'])


def test_killed_while_saving_keeps_the_last_complete_checkpoint(runs):
    assert runs['rc']['save'] == -signal.SIGXFSZ, runs['log'][-3000:]
    left = runs['left']['save']
    # the write of iter_9 was cut: only a temporary file holds a part of
    # it; iter_6 was not deleted first, and the pointer still names it
    assert 'iter_9.pth' not in left
    assert any(n.startswith('.iter_9.pth.tmp-') for n in left)
    assert 'iter_6.pth' in left
    assert runs['left']['pointer'].endswith('iter_6.pth')


def test_resume_is_bit_identical_to_an_uninterrupted_run(runs):
    root, rc, log = runs['root'], runs['rc'], runs['log']
    assert rc['full'] == 0, (root / 'full.log').read_text()[-3000:]
    assert rc['resume'] == 0, log[-3000:]
    assert log.count('Resuming from') == 2
    assert log.count('skipped its first 2 batches') == 2  # mid epoch 2
    assert 'partial checkpoint left by a killed save' in log
    assert not any('.tmp-' in n for n in os.listdir(root / 'work'))
    # the same batches in the same order, iteration by iteration
    full, part = _order(root / 'full.txt'), _order(root / 'part.txt')
    assert sorted(part) == sorted(full) == list(range(1, 13))
    for it, batches in part.items():
        # iterations 7-9 ran more than once (killed before a checkpoint)
        assert set(batches) == {full[it][0]}, it
    assert len(part[7]) == 3 and len(part[1]) == 1
    # and the same weights, bit for bit
    a, b = _final_state(str(root / 'full')), _final_state(str(root / 'work'))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
