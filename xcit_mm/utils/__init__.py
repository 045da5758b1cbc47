from .errors import (
                     CheckpointError,
                     CheckpointMismatchError,
                     MissingFileError,
                     UnsafeCheckpointError,
                     XCiTMMError,
)
from .flops import get_model_complexity
from .state_dict import (
                     compare_state_dicts,
                     strip_common_prefixes,
                     strip_prefix,
                     unwrap_checkpoint,
)

__all__ = [
    'CheckpointError', 'CheckpointMismatchError', 'MissingFileError',
    'UnsafeCheckpointError', 'XCiTMMError', 'get_model_complexity',
    'compare_state_dicts', 'strip_common_prefixes', 'strip_prefix',
    'unwrap_checkpoint'
]
