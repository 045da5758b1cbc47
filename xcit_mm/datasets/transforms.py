"""Image loading that names the bad file, or skips it, by config."""
import logging
import os
import os.path as osp
from typing import Optional

from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine.logging import print_log

from xcit_mm.registry import TRANSFORMS
from xcit_mm.utils.errors import ImageLoadError

ON_ERROR = ('raise', 'skip')


def describe_unreadable(path: str) -> str:
    """Why ``path`` could not be read as an image, in a few words."""
    if '://' in str(path):
        return 'it could not be fetched or decoded'
    if not osp.exists(path):
        return 'it does not exist'
    if not os.access(path, os.R_OK):
        return 'it is not readable (permissions)'
    size = osp.getsize(path)
    if size == 0:
        return 'it is empty (0 bytes)'
    return f'it is not a decodable image ({size} bytes)'


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with a clear policy for bad files.

    mmcv raises an ``AssertionError('failed to load image')`` or a decoder
    error for an empty, truncated or unreadable file, or, with
    ``ignore_empty=True``, silently drops it. Here ``on_error`` chooses:

    - ``'raise'``: :class:`ImageLoadError` naming the file, what is wrong
      with it (missing, empty, unreadable, not an image) and the fix;
    - ``'skip'``: a warning (once per file and process) and ``None``, on
      which mmengine's ``BaseDataset`` takes another random sample in
      training (at most ``max_refetch`` times). Test-mode data sets refuse
      ``None``, so keep ``'raise'`` in val/test pipelines.

    Use it in place of ``LoadImageFromFile`` in a pipeline::

        dict(type='xcit_mm.LoadImageFromFile', on_error='skip')

    Args:
        on_error (str): ``'raise'`` or ``'skip'``. Defaults to ``'raise'``.
        **kwargs: mmcv ``LoadImageFromFile`` arguments (``color_type``,
            ``imdecode_backend``, ``backend_args`` ...), except
            ``ignore_empty``, which ``on_error`` replaces.
    """

    def __init__(self, on_error: str = 'raise', **kwargs) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f'LoadImageFromFile on_error must be one of '
                             f'{ON_ERROR}, got {on_error!r}.')
        if kwargs.pop('ignore_empty', False):
            raise ValueError("Use on_error='skip' instead of ignore_empty.")
        super().__init__(**kwargs)
        self.on_error = on_error
        self._warned = set()

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            out = super().transform(results)
        except Exception as e:  # mmcv asserts, cv2/PIL/file errors
            problem = describe_unreadable(path)
            if self.on_error == 'skip':
                if path not in self._warned:
                    self._warned.add(path)
                    print_log(f'Skipping image {path}: {problem}.',
                              logger='current',
                              level=logging.WARNING)
                return None
            raise ImageLoadError(
                f'Cannot load image {path}: {problem} '
                f'({type(e).__name__}: {e}). Replace or remove the file, or '
                "let training skip such files with dict(type="
                "'xcit_mm.LoadImageFromFile', on_error='skip') in the "
                'pipeline.') from None
        return out

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", on_error='{self.on_error}')"
