from .checkpoint import (CheckpointError, UnsafeCheckpointError,
                         allowed_globals, install_safe_checkpoint_loader,
                         safe_load)
from .errors import MissingFileError
from .launch import setup_cpu_distributed

__all__ = [
    'CheckpointError', 'MissingFileError', 'UnsafeCheckpointError',
    'allowed_globals',
    'install_safe_checkpoint_loader', 'safe_load', 'setup_cpu_distributed'
]
