"""Errors with a fix in their message."""


class MissingFileError(FileNotFoundError):
    """A file or folder a run needs (a dataset, a teacher checkpoint) does
    not exist. The message says how to get it; tools/train.py and
    tools/test.py print it without a traceback."""
