"""xcit_mm: XCiT for the OpenMMLab stack (mmengine, mmpretrain, mmdet,
mmseg).

Importing ``xcit_mm`` changes nothing in mmengine or torch: components
register lazily under the scope ``xcit_mm`` (:mod:`xcit_mm.registry`), and
the runtime (safe checkpoint loading, atomic checkpoints, exact resume) is
what a config names (:mod:`xcit_mm.runtime`).
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
            f'{version} is installed: upgrade it (requirements/runtime.txt '
            'lists the supported versions).')


_check_torch(_torch.__version__)

from .version import __version__  # noqa: E402

__all__ = ['__version__']
