"""One safe way to read checkpoints: ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the
few Python objects that mmengine (``HistoryBuffer`` and numpy scalars in the
message hub) and the official XCiT files (an ``argparse.Namespace``) pickle.
mmengine 0.10.7 then fails to resume. Rather than switching safety off,
:func:`safe_load` allow-lists exactly those objects for the duration of one
load. Anything else that a pickle names (e.g. ``os.system``) is refused with
:class:`~xcit_mm.utils.errors.UnsafeCheckpointError`.

:func:`safe_loading` makes mmengine's checkpoint loaders (used by
``Runner.resume``, ``load_checkpoint`` and
``init_cfg=dict(type='Pretrained')``) read through the allow-list for the
duration of a ``with`` block: local files, ``http(s)://`` URLs and the
model-zoo names (``torchvision://``, ``open-mmlab://``, ``mmcls://`` ...)
that mmengine resolves to URLs. mmengine's own loaders are back after it.
:class:`xcit_mm.Runner` runs ``train()``, ``val()`` and ``test()`` inside
it; importing xcit_mm changes nothing.
"""
import argparse
import contextlib
import os
import os.path as osp
import pickle
import zipfile
from typing import Any, Iterator, List

import numpy as np
import torch

from xcit_mm.utils.errors import (
    CheckpointError,
    MissingFileError,
    UnsafeCheckpointError,
)


def _numpy_globals() -> List[Any]:
    """numpy objects that mmengine's message hub pickles (scalars, arrays)."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in
              ('f2', 'f4', 'f8', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4',
               'u8', 'bool')]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stands in for ``builtins.getattr`` while unpickling.

    mmengine's ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. A general ``getattr`` would let a
    crafted file reach any attribute of any allowed object (for example
    ``ndarray.tofile``), so only those lookups are allowed.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    from xcit_mm.runtime.mmengine_private import history_buffer_statistics
    allowed = {'min', 'max', 'current', 'mean',
               *history_buffer_statistics()}
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr({obj!r}, {name!r}) is '
        'outside the allow-list')


def allowed_globals() -> List[Any]:
    """The complete allow-list: nothing here can run code when unpickled."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return [
        HistoryBuffer, argparse.Namespace, *_numpy_globals(),
        (_history_buffer_getattr, 'builtins.getattr')
    ]


def refused_global(msg: str) -> str:
    """The 'Unsupported global ...' sentence of torch's error message."""
    for line in msg.splitlines():
        if 'nsupported global' in line or 'unsupported GLOBAL' in line:
            return line.split('error:')[-1].strip().split('. Please use')[0]
    return msg.strip().splitlines()[0] if msg.strip() else 'unknown'


@contextlib.contextmanager
def _allow_listed(filename: str) -> Iterator[None]:
    """Unpickle with :func:`allowed_globals`; turn torch's and zipfile's
    errors into :class:`CheckpointError` messages that say what to do."""
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            yield
    except pickle.UnpicklingError as e:
        msg = str(e)
        if 'global' in msg.lower():  # a refused import, not a broken file
            raise UnsafeCheckpointError(
                f'Refused to load {filename!r}: it pickles objects outside '
                'the allow-list of xcit_mm.runtime.checkpoint, which could '
                'run code. If you trust the file, convert it in a separate '
                f'process. Details: {refused_global(msg)}') from None
        raise _unreadable(filename, e) from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError,
            KeyError, IndexError, TypeError) as e:
        # a file that is no pickle at all (a text or HTML page saved as
        # .pth) sends the unpickler to a memo entry that does not exist:
        # KeyError / IndexError
        raise _unreadable(filename, e) from None


def _unreadable(filename: str, e: BaseException) -> CheckpointError:
    """The error for a file that torch.load could not read: not torch.save
    output at all, or truncated / corrupt."""
    size = (f' ({os.path.getsize(filename)} bytes)'
            if osp.isfile(filename) else '')
    why = f'{type(e).__name__}: {str(e).split(". ")[0]}'
    if not _looks_like_torch_save(filename):
        return CheckpointError(
            f'{filename!r}{size} is not a checkpoint: it is neither the zip '
            f'archive that torch.save writes nor a legacy pickle ({why}). '
            'Check that the path names the .pth file itself (a download '
            'that saved an error or HTML page looks like this); re-download '
            'or re-convert it.')
    return CheckpointError(
        f'{filename!r}{size} is not a readable checkpoint: {why}. The file '
        'is probably truncated or corrupt (an interrupted download or '
        'save): re-download or re-convert it, or resume from an earlier '
        'checkpoint.')


def _looks_like_torch_save(filename: str) -> bool:
    """Whether the file starts as torch.save output does: a zip archive
    (``PK``) or a pickle (protocol 2+ starts with ``0x80``); an empty file
    counts as a truncated one."""
    try:
        with open(filename, 'rb') as f:
            head = f.read(2)
    except OSError:
        return True
    return not head or head == b'PK' or head[:1] == b'\x80'


def safe_load(filename: str, map_location: Any = 'cpu',
              mmap: bool = False) -> Any:
    """Load a checkpoint with ``weights_only=True`` and the allow-list.

    ``mmap=True`` maps the tensors' storage instead of reading it (cheap
    when only the ``meta`` is needed).

    Raises:
        MissingFileError: the file does not exist (a FileNotFoundError).
        UnsafeCheckpointError: the file pickles something outside the
            allow-list (it is refused, nothing in it runs).
        CheckpointError: the file is truncated or not a checkpoint.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise MissingFileError(
            f'Checkpoint {filename!r} does not exist. Check the path (it is '
            'relative to the directory you run from), or download or '
            'convert the checkpoint first.')
    with _allow_listed(filename):
        return torch.load(filename, map_location=map_location,
                          weights_only=True, mmap=mmap)


def _load_from_local(filename: str, map_location=None) -> Any:
    filename = osp.expanduser(filename)
    return safe_load(filename, map_location)


def _load_url(url: str, model_dir=None, map_location=None,
              progress: bool = False, **kwargs) -> Any:
    """torch hub's ``load_state_dict_from_url`` (download once into its
    cache) reading with the allow-list.

    mmengine downloads with the same function but leaves its
    ``weights_only`` at the default, False on every torch version, so a
    crafted file would run code.
    """
    from torch.hub import load_state_dict_from_url
    with _allow_listed(url):
        return load_state_dict_from_url(
            url, model_dir=model_dir, map_location=map_location,
            progress=progress, weights_only=True, **kwargs)


def _load_from_http(filename: str, map_location=None, model_dir=None,
                    progress: bool = False) -> Any:
    """mmengine's ``load_from_http`` (rank 0 downloads first into torch
    hub's cache, then the others read it), reading with the allow-list."""
    from mmengine.dist import get_dist_info

    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = _load_url(filename, model_dir, map_location, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = _load_url(filename, model_dir, map_location,
                                   progress)
    return checkpoint


@contextlib.contextmanager
def safe_loading() -> Iterator[None]:
    """Within the block, mmengine reads checkpoints with :func:`safe_load`'s
    allow-list; afterwards its own loaders are back.

    Local files and ``http(s)://`` URLs get xcit_mm's loaders; the
    model-zoo schemes (``torchvision://`` and ``modelzoo://``,
    ``open-mmlab://`` and ``openmmlab://``, ``mmcls://``) keep mmengine's
    name resolution, and the download they end in reads with the
    allow-list. Nesting is allowed (the inner block changes nothing).
    """
    from mmengine.runner import CheckpointLoader

    from xcit_mm.runtime.mmengine_private import (
        checkpoint_loaders,
        restore_checkpoint_loaders,
        set_url_loader,
        url_loader,
    )
    saved, saved_url_loader = checkpoint_loaders(), url_loader()
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local,
                                     force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'),
                                     loader=_load_from_http, force=True)
    set_url_loader(_load_url)
    try:
        yield
    finally:
        restore_checkpoint_loaders(saved)
        set_url_loader(saved_url_loader)
