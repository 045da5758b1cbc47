"""Crash-safe local files: atomic writes and picking a checkpoint to resume.

mmengine 0.10.7 writes a checkpoint with ``open(path, 'wb').write(...)``
(``LocalBackend.put``), so a job killed during the write leaves a truncated
file under the final name. :class:`AtomicLocalBackend` writes to a temporary
file in the same folder, flushes and fsyncs it, then renames it over the
target (``os.replace`` is atomic on POSIX and Windows): a reader sees the old
file or the complete new one, never a part. It is an mmengine file backend
named :data:`ATOMIC_BACKEND`, chosen per writer with
``backend_args=dict(backend='xcit_mm_atomic_local')``; mmengine's ``'local'``
backend is left as it is. :class:`xcit_mm.AtomicCheckpointHook` saves through
it, writes the ``last_checkpoint`` pointer atomically and deletes old
checkpoints only after both.

:func:`find_resume_checkpoint` is what :class:`xcit_mm.Runner` resumes from
when ``resume=True`` names no file: the newest *complete* checkpoint of a
work dir, skipping (with a warning) a missing, truncated or corrupt one.
"""
import glob
import io
import logging
import os
import os.path as osp
import re
import secrets
import zipfile
from pathlib import Path
from typing import List, Optional, Union

import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import print_log
from mmengine.runner.checkpoint import find_latest_checkpoint

#: Temporary files are ``.<name>.tmp-<pid>-<random>`` beside the target.
TMP_PATTERN = re.compile(r'^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-\w+$')


def atomic_write(data: Union[bytes, str], filepath: Union[str, Path],
                 encoding: str = 'utf-8', fsync: bool = True) -> None:
    """Write ``data`` to ``filepath`` so that it is complete or absent.

    Args:
        data (bytes | str): The content (str is encoded with ``encoding``).
        filepath (str | Path): The target; its folder is created.
        encoding (str): For str data. Defaults to 'utf-8'.
        fsync (bool): Flush the file to disk before the rename, so that a
            machine crash (not only a killed process) cannot leave an empty
            file under the final name. Defaults to True.
    """
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode(encoding)
    tmp = osp.join(folder, f'.{osp.basename(filepath)}.tmp-{os.getpid()}-'
                   f'{secrets.token_hex(4)}')
    # O_EXCL: a fresh file; mode 0o666 minus the process umask, the
    # permissions open(path, 'wb') would give (mkstemp gives 0o600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                 | getattr(os, 'O_BINARY', 0), 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    if fsync and hasattr(os, 'O_DIRECTORY'):  # make the rename durable
        dir_fd = os.open(folder, os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        except OSError:  # some file systems refuse fsync on a folder
            pass
        finally:
            os.close(dir_fd)


def atomic_torch_save(obj, filepath: Union[str, Path]) -> None:
    """``torch.save(obj, filepath)`` through :func:`atomic_write`: a killed
    converter never leaves a half-written file under the final name."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(buffer.getvalue(), filepath)


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` / ``put_text`` are atomic
    (see :func:`atomic_write`). Reading is unchanged."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write(obj, filepath, encoding=encoding)


#: The backend name of :class:`AtomicLocalBackend` for ``backend_args``.
ATOMIC_BACKEND = 'xcit_mm_atomic_local'


def register_atomic_backend() -> str:
    """Add :class:`AtomicLocalBackend` to mmengine's file backends under the
    name :data:`ATOMIC_BACKEND` (no URI prefix, so no path picks it by
    itself) and return that name. Nothing else changes; calling it again
    does nothing."""
    from mmengine.fileio.backends import backends, register_backend
    if backends.get(ATOMIC_BACKEND) is not AtomicLocalBackend:
        register_backend(ATOMIC_BACKEND, AtomicLocalBackend)
    return ATOMIC_BACKEND


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(folder: str) -> List[str]:
    """Delete the temporary files that killed writers left in ``folder``.

    Only files named by :func:`atomic_write` whose process is gone are
    removed. Returns the paths this call removed. Every process of a
    restarted job may call it at once on the same folder: a file that
    another process removed first is not an error.
    """
    removed = []
    for path in glob.glob(osp.join(folder, '.*.tmp-*')):
        m = TMP_PATTERN.match(osp.basename(path))
        if m and int(m.group('pid')) != os.getpid() and not _pid_alive(
                int(m.group('pid'))):
            try:
                os.remove(path)
            except FileNotFoundError:
                continue  # another process of the job removed it first
            removed.append(path)
    return removed


def checkpoint_is_complete(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint, or None when it is.

    A torch checkpoint is a zip archive: a truncated file has no central
    directory, and a corrupt member fails its CRC check. The check reads
    the file once and unpickles nothing.
    """
    if not osp.isfile(path):
        return 'it does not exist'
    size = osp.getsize(path)
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile:
        return f'it is truncated or not a checkpoint ({size} bytes)'
    except OSError as e:
        return f'it cannot be read ({e})'
    if bad is not None:
        return f'its member {bad!r} is corrupt'
    return None


#: ``epoch_<n>.pth`` / ``iter_<n>.pth``, as mmengine's CheckpointHook names
#: them.
CHECKPOINT_NAME = re.compile(r'^(?P<unit>epoch|iter)_(?P<n>\d+)\.pth$')


def _saved_iteration(path: str) -> int:
    """The iteration a checkpoint was saved at (``meta['iter']``), read
    with :func:`~xcit_mm.runtime.checkpoint.safe_load` (memory-mapped, so
    the tensors are not read); -1 when it cannot be read."""
    from xcit_mm.runtime.checkpoint import safe_load
    from xcit_mm.utils.errors import XCiTMMError
    try:
        return int(safe_load(path, mmap=True).get('meta', {})['iter'])
    except (XCiTMMError, KeyError, TypeError, ValueError, AttributeError):
        return -1


def _checkpoint_files(work_dir: str) -> List[str]:
    """``epoch_*.pth`` / ``iter_*.pth`` in ``work_dir``, furthest in
    training first.

    Files are ordered by the epoch or iteration in their name, not by
    modification time (which ``cp -r``, a restore or a sync changes). A
    folder holding both ``epoch_*`` and ``iter_*`` files (a config changed
    between runs) is ordered by the iteration each checkpoint holds.
    """
    files = [p for p in glob.glob(osp.join(work_dir, '*.pth'))
             if CHECKPOINT_NAME.match(osp.basename(p))]
    names = [CHECKPOINT_NAME.match(osp.basename(p)) for p in files]
    if len({m.group('unit') for m in names}) > 1:
        keys = [_saved_iteration(p) for p in files]
    else:
        keys = [int(m.group('n')) for m in names]
    order = sorted(zip(keys, files), reverse=True)
    return [p for _, p in order]


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint of ``work_dir``, or None.

    The file named by ``work_dir/last_checkpoint`` comes first, then the
    ``epoch_*.pth`` and ``iter_*.pth`` files from the highest epoch or
    iteration down (by name; not by modification time, which a copy
    changes). A candidate that is missing, truncated or corrupt is skipped
    with a warning. Temporary files left by a killed save are deleted; all
    the processes of a job may do this at once.

    Args:
        work_dir (str): The training work dir.

    Returns:
        str | None: The checkpoint to resume from; None when there is none
        (training then starts from scratch).
    """
    if not osp.isdir(work_dir):
        return None
    for path in remove_stale_temp_files(work_dir):
        print_log(f'Removed {path}, a partial checkpoint left by a killed '
                  'save.', logger='current')
    candidates = []
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        target = find_latest_checkpoint(work_dir)
        if target:
            # mmengine stores the path as written at save time; a moved
            # work dir still has the file beside the pointer
            if not osp.isfile(target) and osp.isfile(
                    osp.join(work_dir, osp.basename(target))):
                target = osp.join(work_dir, osp.basename(target))
            candidates.append(target)
    candidates += [p for p in _checkpoint_files(work_dir)
                   if osp.abspath(p) not in map(osp.abspath, candidates)]
    for path in candidates:
        problem = checkpoint_is_complete(path)
        if problem is None:
            return path
        print_log(f'Not resuming from {path}: {problem}. Trying the '
                  'previous checkpoint.', logger='current',
                  level=logging.WARNING)
    if candidates:
        print_log(f'No complete checkpoint in {work_dir}: training starts '
                  'from scratch.', logger='current',
                  level=logging.WARNING)
    return None
