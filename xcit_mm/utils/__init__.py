from .checkpoint import (CheckpointError, UnsafeCheckpointError,
                         allowed_globals, install_safe_checkpoint_loader,
                         safe_load)
from .errors import XCiTMMError, explain_exception
from .fileio import (AtomicLocalBackend, atomic_write,
                     find_resume_checkpoint, install_atomic_local_backend)

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'allowed_globals',
    'install_safe_checkpoint_loader', 'safe_load', 'XCiTMMError',
    'explain_exception', 'AtomicLocalBackend', 'atomic_write',
    'find_resume_checkpoint', 'install_atomic_local_backend'
]
