from .checkpoint import (CheckpointError, UnsafeCheckpointError,
                         allowed_globals, install_safe_checkpoint_loader,
                         safe_load)
from .flops import get_model_complexity

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'allowed_globals',
    'install_safe_checkpoint_loader', 'safe_load', 'get_model_complexity'
]
