"""xcit_mm: XCiT for the OpenMMLab stack (mmengine, mmpretrain, mmdet,
mmseg).

Importing ``xcit_mm`` routes mmengine's local checkpoint loading through
:func:`xcit_mm.utils.safe_load` (``torch.load(weights_only=True)`` with a
small allow-list), which makes ``Runner.resume`` work on torch >= 2.6 without
turning safety off, and makes mmengine's writes of local files atomic
(temporary file + rename, :mod:`xcit_mm.utils.fileio`), so a killed job never
leaves a truncated checkpoint under its final name. Models register lazily:
see :mod:`xcit_mm.registry`.
"""
from .utils.checkpoint import install_safe_checkpoint_loader
from .utils.fileio import install_atomic_local_backend
from .version import __version__

install_safe_checkpoint_loader()
install_atomic_local_backend()

__all__ = ['__version__']
