"""xcit_mm: XCiT for the OpenMMLab stack (mmengine, mmpretrain, mmdet,
mmseg).

Importing ``xcit_mm`` makes two documented process-wide changes to
mmengine, and no other:

- :func:`xcit_mm.utils.use_safe_checkpoint_loading`: mmengine reads local
  and ``http(s)://`` checkpoints with ``torch.load(weights_only=True)`` and
  a small allow-list, which makes ``Runner.resume`` work on torch >= 2.6
  without turning safety off;
- :func:`xcit_mm.utils.install_atomic_local_backend`: mmengine's writes of
  local files are atomic (temporary file + rename), so a killed job never
  leaves a truncated checkpoint under its final name.

Models register lazily: see :mod:`xcit_mm.registry`.
"""
import re as _re

import torch as _torch

#: The oldest torch that works: ``safe_load`` needs
#: ``torch.serialization.safe_globals`` (2.5) and the fast XCA path needs
#: ``torch.compiler.is_compiling`` (2.3). Kept equal to
#: requirements/runtime.txt.
MIN_TORCH = (2, 5)


def _check_torch(version: str) -> None:
    found = tuple(int(v) for v in _re.findall(r'\d+', version)[:2])
    if found < MIN_TORCH:
        raise ImportError(
            f'xcit_mm needs torch >= {MIN_TORCH[0]}.{MIN_TORCH[1]} but torch '
            f'{version} is installed: upgrade it (tools/install.sh installs '
            'the tested versions).')


_check_torch(_torch.__version__)

from .utils.checkpoint import use_safe_checkpoint_loading  # noqa: E402
from .utils.fileio import install_atomic_local_backend  # noqa: E402
from .version import __version__  # noqa: E402

use_safe_checkpoint_loading()
install_atomic_local_backend()

__all__ = ['__version__']
