"""One safe way to read checkpoints: ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the
few Python objects that mmengine (``HistoryBuffer`` and numpy scalars in the
message hub) and the official XCiT files (an ``argparse.Namespace``) pickle.
mmengine 0.10.7 then fails to resume. Rather than switching safety off,
:func:`safe_load` allow-lists exactly those objects for the duration of one
load, and :func:`install_safe_checkpoint_loader` makes mmengine's loader for
local files (used by ``Runner.resume``, ``load_checkpoint`` and
``init_cfg=dict(type='Pretrained')``) call it. Anything else that a pickle
names (e.g. ``os.system``) is refused with :class:`UnsafeCheckpointError`.
"""
import argparse
import os
import os.path as osp
import pickle
import zipfile
from typing import Any, List, Optional
from urllib.parse import urlparse

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that asks to build objects outside the allow-list."""


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
    allowed = {'min', 'max', 'current', 'mean',
               *HistoryBuffer._statistics_methods}
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


def _unsupported_global(msg: str) -> str:
    """The 'Unsupported global ...' sentence of torch's error message."""
    for line in msg.splitlines():
        if 'nsupported global' in line or 'unsupported GLOBAL' in line:
            return line.split('error:')[-1].strip().split('. Please use')[0]
    return msg.strip().splitlines()[0] if msg.strip() else 'unknown'


def safe_load(filename: str, map_location: Any = 'cpu') -> Any:
    """Load a checkpoint with ``weights_only=True`` and the allow-list.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the file pickles something outside the
            allow-list (it is refused, nothing in it runs).
        CheckpointError: the file is truncated or not a checkpoint.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint {filename!r} does not exist.')
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if 'global' in msg.lower():  # a refused import, not a broken file
            raise UnsafeCheckpointError(
                f'Refused to load {filename!r}: it pickles objects outside '
                'the allow-list of xcit_mm.utils.checkpoint, which could run '
                'code. If you trust the file, convert it in a separate '
                f'process. Details: {_unsupported_global(msg)}') from None
        raise CheckpointError(
            f'{filename!r} is not a readable checkpoint ({e}). The file may '
            'be truncated or corrupt: re-download or re-convert it.') from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError) as e:
        size = os.path.getsize(filename)
        raise CheckpointError(
            f'{filename!r} ({size} bytes) is not a readable checkpoint: '
            f'{type(e).__name__}: {str(e).split(". ")[0]}. The file is '
            'probably truncated or '
            'corrupt (an interrupted download or save): re-download or '
            're-convert it, or resume from an earlier checkpoint.') from None


def _load_from_local(filename: str, map_location=None) -> Any:
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_load(filename, map_location)


def _load_from_http(filename: str, map_location=None,
                    model_dir: Optional[str] = None) -> Any:
    """Download a checkpoint once (torch hub's cache) and read it with
    :func:`safe_load`; in distributed runs rank 0 downloads first."""
    from mmengine.dist import get_dist_info
    from torch.hub import download_url_to_file, get_dir
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(urlparse(filename).path))
    rank, world_size = get_dist_info()

    def fetch() -> None:
        if not osp.exists(cached):
            os.makedirs(model_dir, exist_ok=True)
            # a temporary file moved into place: never a partial cache
            download_url_to_file(filename, cached, progress=False)

    if rank == 0:
        fetch()
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:  # e.g. another node with its own cache
            fetch()
    return safe_load(cached, map_location)


def install_safe_checkpoint_loader() -> None:
    """Route mmengine's loading of local files and of ``http(s)://`` URLs
    through safe_load (``torchvision://``, ``open-mmlab://`` and
    ``mmcls://`` keep mmengine's own loader, which on torch >= 2.6 also
    reads with ``weights_only=True``, without the allow-list)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    if CheckpointLoader._schemes.get('') is not _load_from_local:
        CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local,
                                         force=True)
    if CheckpointLoader._schemes.get('http://') is not _load_from_http:
        CheckpointLoader.register_scheme(
            prefixes=('http://', 'https://'), loader=_load_from_http,
            force=True)
