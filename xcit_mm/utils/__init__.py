from .checkpoint import allowed_globals, safe_load, use_safe_checkpoint_loading
from .errors import (CheckpointError, CheckpointMismatchError,
                     MissingFileError, UnsafeCheckpointError, XCiTMMError)
from .fileio import (AtomicLocalBackend, atomic_torch_save, atomic_write,
                     find_resume_checkpoint, install_atomic_local_backend)
from .flops import get_model_complexity
from .launch import setup_cpu_distributed
from .state_dict import (compare_state_dicts, strip_common_prefixes,
                         strip_prefix, unwrap_checkpoint)

__all__ = [
    'allowed_globals', 'safe_load', 'use_safe_checkpoint_loading',
    'CheckpointError', 'CheckpointMismatchError', 'MissingFileError',
    'UnsafeCheckpointError', 'XCiTMMError', 'AtomicLocalBackend',
    'atomic_torch_save', 'atomic_write', 'find_resume_checkpoint',
    'install_atomic_local_backend',
    'get_model_complexity', 'setup_cpu_distributed', 'compare_state_dicts',
    'strip_common_prefixes', 'strip_prefix', 'unwrap_checkpoint'
]
