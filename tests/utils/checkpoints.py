"""Checkpoint contents for the safe-loading tests."""
import os

from tests.utils.tools import REPO  # noqa: F401


class RunsCode:
    """Unpickling this runs ``touch marker`` (os.system): saved with
    ``torch.save`` it makes a crafted, malicious checkpoint; the marker
    file tells whether it ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))
