"""ImageNet in mmpretrain's layout, failing early with instructions when the
data is missing."""
import os.path as osp
from typing import Optional, Union

from mmpretrain.datasets import ImageNet as _MMPretrainImageNet

from xcit_mm.registry import DATASETS
from xcit_mm.utils.errors import MissingFileError

IMAGENET_HELP = """\
Prepare ImageNet-1k (ILSVRC2012, https://image-net.org/download.php) in \
mmpretrain's layout under {root!r}, e.g. `ln -s /path/to/imagenet {root}`:

    {root}/
    ├── train/
    │   ├── n01440764/*.JPEG      (1000 class folders, 1,281,167 imgs)
    │   └── ...
    └── val/
        ├── n01440764/*.JPEG      (the 50,000 val images sorted into the
        └── ...                    same 1000 class folders)

or flat train/ and val/ folders plus meta/train.txt and meta/val.txt
("relative/path.JPEG label" per line). Another location: set
train_dataloader.dataset.data_root, val_dataloader.dataset.data_root and
test_dataloader.dataset.data_root in the config."""

#: The config keys that :data:`IMAGENET_HELP` names.
IMAGENET_KEYS = tuple(f'{loader}_dataloader.dataset.data_root'
                      for loader in ('train', 'val', 'test'))


def check_image_folder(data_root: str, data_prefix: Union[str, dict] = '',
                       ann_file: str = '', name: str = 'ImageNet',
                       help_text: Optional[str] = None) -> None:
    """Raise :class:`~xcit_mm.utils.errors.MissingFileError` unless the
    images are there.

    Args:
        data_root (str): Dataset root.
        data_prefix (str | dict): Image folder relative to ``data_root``
            (mmengine's ``img_path`` dict form is accepted). Defaults to ''.
        ann_file (str): Annotation file relative to ``data_root``, if any.
            Defaults to ''.
        name (str): Dataset name for the message. Defaults to 'ImageNet'.
        help_text (str, optional): How to prepare the data; ``{root}`` is
            replaced by ``data_root``. Defaults to the ImageNet instructions.
    """
    if isinstance(data_prefix, dict):
        data_prefix = data_prefix.get('img_path', '')
    if '://' in str(data_root):  # remote storage (petrel, s3): not checked
        return
    folder = osp.join(data_root, data_prefix)
    missing = [p for p in ([folder] + ([osp.join(data_root, ann_file)]
                                        if ann_file else []))
               if not osp.exists(p)]
    if not missing:
        return
    fix = dict(config_key=IMAGENET_KEYS, config_value='PATH',
               remedy='sample-data') if help_text is None else {}
    help_text = (IMAGENET_HELP if help_text is None else help_text).format(
        root=data_root or '.')
    raise MissingFileError(
        f'{name} data not found: {", ".join(repr(p) for p in missing)} does '
        f'not exist.\n{help_text}', **fix)


@DATASETS.register_module()
class ImageNet(_MMPretrainImageNet):
    """mmpretrain's :class:`~mmpretrain.datasets.ImageNet`, checked first.

    Identical to mmpretrain's dataset (same arguments, layouts and class
    names), except that a missing ``data_root/split`` folder or annotation
    file raises :class:`~xcit_mm.utils.errors.MissingFileError` with the
    expected layout and how to prepare it, instead of a bare ``[Errno 2]``
    from deep inside the folder scan. Use it in a config as
    ``type='xcit_mm.ImageNet'``.
    """

    def __init__(self,
                 data_root: str = '',
                 split: str = '',
                 data_prefix: Union[str, dict] = '',
                 ann_file: str = '',
                 **kwargs):
        prefix = data_prefix or split
        check_image_folder(data_root, prefix, ann_file)
        super().__init__(data_root=data_root, split=split,
                         data_prefix=data_prefix, ann_file=ann_file, **kwargs)
