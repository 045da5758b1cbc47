"""Checked conversions of foreign checkpoints: each builds the model the
weights are for and requires every key to match it. The command-line
wrappers are in ``tools/model_converters/``."""
from .xcit import convert_checkpoint
from .xcit_dense import build_model_from_config, convert_dense_checkpoint

__all__ = [
    'convert_checkpoint', 'convert_dense_checkpoint',
    'build_model_from_config'
]
