from .checkpoint import (CheckpointError, UnsafeCheckpointError,
                         allowed_globals, install_safe_checkpoint_loader,
                         safe_load)
from .errors import MissingFileError, XCiTMMError, explain_exception
from .fileio import (AtomicLocalBackend, atomic_write,
                     find_resume_checkpoint, install_atomic_local_backend)
from .flops import get_model_complexity
from .launch import setup_cpu_distributed

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'allowed_globals',
    'install_safe_checkpoint_loader', 'safe_load', 'MissingFileError',
    'XCiTMMError', 'explain_exception', 'AtomicLocalBackend', 'atomic_write',
    'find_resume_checkpoint', 'install_atomic_local_backend',
    'get_model_complexity', 'setup_cpu_distributed'
]
