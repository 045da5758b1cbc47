from .checkpoint import (CheckpointError, UnsafeCheckpointError,
                         allowed_globals, install_safe_checkpoint_loader,
                         safe_load)

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'allowed_globals',
    'install_safe_checkpoint_loader', 'safe_load'
]
