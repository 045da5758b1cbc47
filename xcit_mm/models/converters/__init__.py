"""Checked conversions of foreign checkpoints: each builds the model the
weights are for and requires every key to match it. The command-line
wrappers are in ``tools/model_converters/``."""
from .xcit import convert_checkpoint

__all__ = ['convert_checkpoint']
