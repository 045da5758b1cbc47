"""The command-line layer of ``tools/``: reading a config with checked
``--cfg-options``, the options of ``tools/train.py`` / ``tools/test.py``,
and reporting a user's mistake as one paragraph with exit status 1.

The library raises errors that say what is wrong and which config key
fixes it; this layer adds the command. Nothing here runs unless a tool
calls it.
"""
from .report import (
                     add_config_args,
                     command_line_hint,
                     explain_exception,
                     failed_in_dataset,
                     format_tool_error,
                     load_config,
                     one_paragraph,
                     run_cli,
)

__all__ = [
    'add_config_args', 'command_line_hint', 'explain_exception',
    'failed_in_dataset', 'format_tool_error', 'load_config', 'one_paragraph',
    'run_cli'
]
