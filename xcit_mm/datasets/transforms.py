"""Image loading that names the bad file, or skips it, by config; a
numpy-2-safe colour jitter."""
import logging
import os
import os.path as osp
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine.logging import print_log
from mmpretrain.datasets.transforms import ColorJitter as MMPretrainColorJitter
from PIL import Image

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
        if 'img_path' not in results and 'img' in results:
            return self._convert_loaded(results)
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

    def _convert_loaded(self, results: dict) -> dict:
        """An image the caller has already decoded (the OpenMMLab
        inferencers read files themselves, in colour, and hand over arrays):
        bring it to this transform's ``color_type`` and ``to_float32``, as if
        it had been read from a file here. A model of 1-channel images (the
        digits demo) then gets 1 channel."""
        img = results['img']
        gray = img.ndim == 2 or img.shape[2] == 1
        if self.color_type.startswith('grayscale') and not gray:
            img = mmcv.bgr2gray(img)
        elif self.color_type.startswith('color') and gray:
            img = mmcv.gray2bgr(img.reshape(img.shape[:2]))
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", on_error='{self.on_error}')"


def adjust_hue(img: np.ndarray, hue_factor: float) -> np.ndarray:
    """Shift the hue of a BGR uint8 image by ``hue_factor`` in [-0.5, 0.5]
    of the colour circle (PIL's HSV, as torchvision and mmcv's pillow
    backend do); gray images are returned unchanged."""
    if img.ndim == 2 or img.shape[2] == 1:
        return img
    hsv = Image.fromarray(np.ascontiguousarray(img[..., ::-1]),
                          mode='RGB').convert('HSV')
    h, s, v = hsv.split()
    # the shift wraps around the circle: uint8 arithmetic modulo 256
    shift = np.uint8(int(hue_factor * 255) % 256)
    with np.errstate(over='ignore'):
        np_h = np.asarray(h, dtype=np.uint8) + shift
    out = Image.merge('HSV', (Image.fromarray(np_h, 'L'), s, v))
    return np.asarray(out.convert('RGB'), dtype=img.dtype)[..., ::-1].copy()


@TRANSFORMS.register_module()
class ColorJitter(MMPretrainColorJitter):
    """mmpretrain's ``ColorJitter`` (torchvision's: the four adjustments in
    random order, factors drawn per image) with a hue shift that works on
    numpy >= 2.

    mmcv 2.x shifts the hue with ``np.uint8(hue_factor * 255)``, which
    raises ``OverflowError`` under numpy 2 for every negative factor, i.e.
    for half of the images once ``hue > 0``. Everything else is
    mmpretrain's. Use ``type='xcit_mm.ColorJitter'``.
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        order, brightness, contrast, saturation, hue = self._rand_params()
        for index in order:
            if index == 0 and brightness is not None:
                img = mmcv.adjust_brightness(img, brightness,
                                             backend=self.backend)
            elif index == 1 and contrast is not None:
                img = mmcv.adjust_contrast(img, contrast,
                                           backend=self.backend)
            elif index == 2 and saturation is not None:
                img = mmcv.adjust_color(img, alpha=saturation,
                                        backend=self.backend)
            elif index == 3 and hue is not None:
                img = adjust_hue(img, hue)
        results['img'] = img
        return results
