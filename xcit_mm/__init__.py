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
from .utils.checkpoint import use_safe_checkpoint_loading
from .utils.fileio import install_atomic_local_backend
from .version import __version__

use_safe_checkpoint_loading()
install_atomic_local_backend()

__all__ = ['__version__']
