"""Atomic writes and the choice of the checkpoint to resume from."""
import os
import time

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import MMLogger

from xcit_mm.runtime.fileio import (
    AtomicLocalBackend,
    atomic_write,
    checkpoint_is_complete,
    find_resume_checkpoint,
    register_atomic_backend,
)


def test_atomic_backend_is_chosen_by_name(tmp_path):
    # mmengine's own local backend is untouched; the checkpoint hook asks
    # for the atomic one by name
    assert not isinstance(get_file_backend(str(tmp_path / 'x.pth')),
                          AtomicLocalBackend)
    backend = get_file_backend(str(tmp_path / 'x.pth'), backend_args=dict(
        backend=register_atomic_backend()))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'abc', str(tmp_path / 'sub' / 'x.pth'))
    backend.put_text('hi', str(tmp_path / 'y.txt'))
    assert (tmp_path / 'sub' / 'x.pth').read_bytes() == b'abc'
    assert (tmp_path / 'y.txt').read_text() == 'hi'
    mode = (tmp_path / 'y.txt').stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # not mkstemp's 0600



def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / 'ckpt.pth'
    atomic_write(b'old complete content', target)
    real_fdopen = os.fdopen

    class HalfFile:

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:3])
            raise OSError(28, 'No space left on device')

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(os, 'fdopen', lambda fd, mode: HalfFile(
        real_fdopen(fd, mode)))
    with pytest.raises(OSError, match='No space'):
        atomic_write(b'new content that never completes', target)
    assert target.read_bytes() == b'old complete content'
    assert os.listdir(tmp_path) == ['ckpt.pth']  # no temp file left


def _save(path, step):
    torch.save({'meta': {'iter': step}, 'state_dict': {
        'w': torch.full((1000, ), float(step))}}, path)


def test_resume_skips_truncated_latest(tmp_path, capsys):
    MMLogger.get_instance('test_fileio')
    work = tmp_path / 'work'
    work.mkdir()
    _save(work / 'iter_3.pth', 3)
    time.sleep(0.02)
    _save(work / 'iter_6.pth', 6)
    data = (work / 'iter_6.pth').read_bytes()
    (work / 'iter_6.pth').write_bytes(data[:len(data) // 2])  # truncated
    (work / 'last_checkpoint').write_text(str(work / 'iter_6.pth'))
    assert 'truncated' in checkpoint_is_complete(str(work / 'iter_6.pth'))
    assert checkpoint_is_complete(str(work / 'iter_3.pth')) is None
    assert find_resume_checkpoint(str(work)) == str(work / 'iter_3.pth')
    out = capsys.readouterr().out
    assert 'Not resuming from' in out and 'iter_6.pth' in out


def test_resume_pointer_to_deleted_file_and_corrupt_member(tmp_path):
    work = tmp_path
    _save(work / 'epoch_1.pth', 4)
    # a flipped byte inside the stored tensor data fails its CRC
    _save(work / 'epoch_2.pth', 8)
    raw = bytearray((work / 'epoch_2.pth').read_bytes())
    i = raw.index(torch.full((1, ), 8.).numpy().tobytes())
    raw[i] ^= 0xFF
    (work / 'epoch_2.pth').write_bytes(bytes(raw))
    os.utime(work / 'epoch_2.pth', (time.time() + 5, time.time() + 5))
    (work / 'last_checkpoint').write_text(str(work / 'iter_9.pth'))
    assert 'corrupt' in checkpoint_is_complete(str(work / 'epoch_2.pth'))
    assert find_resume_checkpoint(str(work)) == str(work / 'epoch_1.pth')


def test_resume_nothing(tmp_path):
    assert find_resume_checkpoint(str(tmp_path / 'none')) is None
    (tmp_path / 'junk.pth').write_bytes(b'x')  # not a training checkpoint
    assert find_resume_checkpoint(str(tmp_path)) is None


def test_resume_order_is_the_saved_epoch_not_the_file_time(tmp_path):
    """After ``cp -r`` (or a restore) the modification times say nothing:
    the truncated newest checkpoint falls back to the highest complete
    epoch (epoch_9, not epoch_2 that the copy touched last, nor epoch_10
    that sorts before epoch_9 as text)."""
    now = time.time()
    for epoch in (2, 9, 10, 11):
        _save(tmp_path / f'epoch_{epoch}.pth', epoch)
    data = (tmp_path / 'epoch_11.pth').read_bytes()
    (tmp_path / 'epoch_11.pth').write_bytes(data[:len(data) // 2])
    (tmp_path / 'epoch_10.pth').write_bytes(data[:100])
    for epoch, age in ((2, 0), (9, 50), (10, 40), (11, 30)):
        os.utime(tmp_path / f'epoch_{epoch}.pth', (now - age, now - age))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_11.pth'))
    assert find_resume_checkpoint(str(tmp_path)) == \
        str(tmp_path / 'epoch_9.pth')
    # epoch_* and iter_* in one folder (the config changed between runs):
    # ordered by the iteration each checkpoint holds
    _save(tmp_path / 'iter_20.pth', 20)  # _save: meta['iter'] = 20
    os.utime(tmp_path / 'iter_20.pth', (now - 100, now - 100))
    _save(tmp_path / 'iter_5.pth', 5)
    assert find_resume_checkpoint(str(tmp_path)) == \
        str(tmp_path / 'iter_20.pth')


def _resume_in_step(args):
    work_dir, barrier = args
    barrier.wait()
    try:
        return repr(find_resume_checkpoint(work_dir))
    except Exception as e:  # what a rank of a restarted job would die of
        return f'{type(e).__name__}: {e}'


def test_restarted_ranks_remove_stale_temp_files_at_once(tmp_path):
    """Every rank of a restarted job looks for the checkpoint at the same
    moment; the temporary files of the killed save are removed by
    whichever gets there first, and no rank fails."""
    import multiprocessing
    import subprocess
    import sys
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()  # its pid names the killed writer's temporary files
    _save(tmp_path / 'iter_4.pth', 4)
    for i in range(2000):
        (tmp_path / f'.iter_8.pth.tmp-{dead.pid}-{i:08x}').write_bytes(b'x')
    ctx = multiprocessing.get_context('fork')
    ranks = 6
    barrier = ctx.Manager().Barrier(ranks)
    with ctx.Pool(ranks) as pool:
        results = pool.map(_resume_in_step,
                           [(str(tmp_path), barrier)] * ranks, chunksize=1)
    assert results == [repr(str(tmp_path / 'iter_4.pth'))] * ranks
    assert sorted(os.listdir(tmp_path)) == ['iter_4.pth']
