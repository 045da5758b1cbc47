"""The errors that bad input causes.

Every exception that xcit_mm raises because of the user's input (a config,
a data set, a checkpoint, an image) derives from :class:`XCiTMMError` and
carries a message that names the problem and the fix. The tools print such
errors as one paragraph and exit with status 1 (:mod:`xcit_mm.cli`);
any other exception is a bug and keeps its traceback.

Each class also derives from the built-in exception a caller would expect
(``FileNotFoundError``, ``ValueError``, ...), so ``except ValueError`` keeps
working around xcit_mm calls.

The messages speak of the config and of the Python API only. What fixes an
error may also be given as data, for a front end to word in its own terms
(the command-line tools print the matching option or command, see
:func:`xcit_mm.cli.report.explain_exception`): ``config_key``, the config
keys whose value fixes it, and ``remedy``, one of :data:`REMEDIES`.
"""
from typing import Any, Optional, Sequence, Union

#: The fixes an error's ``remedy`` may name.
REMEDIES = {
    'convert-xcit': 'convert official, timm or DINO XCiT weights to an '
    'xcit_mm checkpoint (xcit_mm.models.backbones.xcit_convert)',
    'convert-crossformer': 'convert official CrossFormer weights to an '
    'xcit_mm checkpoint (xcit_mm.models.backbones.crossformer_convert)',
    'teacher-checkpoint': 'save a trained timm classifier as the '
    "distillation teacher's checkpoint",
    'sample-data': 'use a small built-in data set instead of the missing '
    'one',
}


class XCiTMMError(Exception):
    """Base of the errors that bad input causes (printed without a
    traceback by the tools).

    Args:
        message (str): What is wrong and how to fix it, in terms of the
            config and the Python API.
        config_key (str | Sequence[str], optional): The config key(s)
            whose value fixes the error; kept as the tuple
            :attr:`config_keys`.
        config_value (str): A placeholder or example value for those keys
            (``'PATH'``, ``'None'``). Defaults to ``'VALUE'``.
        remedy (str, optional): The fix, a key of :data:`REMEDIES`.
    """

    def __init__(self,
                 message: str = '',
                 *args: Any,
                 config_key: Union[str, Sequence[str], None] = None,
                 config_value: str = 'VALUE',
                 remedy: Optional[str] = None) -> None:
        super().__init__(message, *args)
        self.config_keys = ((config_key, ) if isinstance(config_key, str)
                            else tuple(config_key or ()))
        self.config_value = config_value
        self.remedy = remedy

    def __str__(self) -> str:  # KeyError subclasses would quote the message
        return str(self.args[0]) if self.args else ''


class MissingFileError(XCiTMMError, FileNotFoundError):
    """A file or folder a run needs does not exist: a data set, an
    annotation file, a config, a checkpoint, a teacher. The message says
    how to get it or which config key to point at it."""


class ConfigError(XCiTMMError, ValueError):
    """A config value that cannot work (unknown key, patch size, index)."""


class ArchError(ConfigError, KeyError):
    """An unknown architecture name or an incomplete arch dict."""


class InputShapeError(XCiTMMError, ValueError):
    """An input tensor that the model cannot take (channels, size)."""


class AnnotationError(XCiTMMError, ValueError):
    """An annotation file that is not what the data set expects."""


class ImageLoadError(XCiTMMError, OSError):
    """An image file that is empty, unreadable or not an image."""


class CheckpointError(XCiTMMError, RuntimeError):
    """A checkpoint file that cannot be read: truncated, corrupt, or not a
    checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that asks to build objects outside the allow-list of
    :func:`xcit_mm.runtime.checkpoint.safe_load` (refused; nothing runs)."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """A checkpoint whose tensors do not fit the model being built, trained
    or tested."""


class MissingDependencyError(XCiTMMError, ImportError):
    """The environment lacks a library (or its compiled part) that the
    config needs, e.g. mmcv's ops on the light install."""


class NonFiniteLossError(XCiTMMError, FloatingPointError):
    """Training met a NaN or infinite loss (``NonFiniteLossHook``)."""


class NonFiniteWeightsError(XCiTMMError, FloatingPointError):
    """A checkpoint about to be written holds NaN or infinite weights."""
