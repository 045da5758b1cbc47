"""xcit_mm.ImageNet: mmpretrain's ImageNet, with a clear error when the data
is missing."""
import pytest
from mmengine.registry import DATASETS, init_default_scope

from tests.utils import make_split_folders
from xcit_mm.cli import explain_exception
from xcit_mm.datasets import ImageNet
from xcit_mm.utils.errors import MissingFileError

CLASSES = ('class_0', 'class_1')


def build(**kwargs):
    init_default_scope('mmpretrain')
    return DATASETS.build(dict(type='xcit_mm.ImageNet', pipeline=[],
                               metainfo=dict(classes=CLASSES), **kwargs))


def test_loads_class_folders(tmp_path):
    root = make_split_folders(str(tmp_path / 'imagenet'))
    train = build(data_root=root, split='train')
    assert isinstance(train, ImageNet)
    assert len(train) == 8
    assert sorted({train.get_data_info(i)['gt_label']
                   for i in range(8)}) == [0, 1]
    assert len(build(data_root=root, split='val')) == 8


def test_loads_flat_folder_with_annotation_file(tmp_path):
    root = make_split_folders(str(tmp_path / 'imagenet'))
    (tmp_path / 'imagenet' / 'meta').mkdir()
    (tmp_path / 'imagenet' / 'meta' / 'val.txt').write_text(
        'class_0/0.png 0\nclass_1/1.png 1\n')
    val = build(data_root=root, split='val')  # meta/val.txt is picked up
    assert len(val) == 2


def test_missing_data_names_path_and_layout(tmp_path):
    root = str(tmp_path / 'imagenet')
    with pytest.raises(MissingFileError) as e:
        build(data_root=root, split='train')
    msg = str(e.value)
    assert f"'{root}/train' does not exist" in msg
    assert 'n01440764' in msg and 'meta/train.txt' in msg
    # the library names the config keys; the tools add the command line
    assert 'set train_dataloader.dataset.data_root' in ' '.join(msg.split())
    assert 'tools/' not in msg and '--cfg-options' not in msg
    assert e.value.config_keys == tuple(
        f'{s}_dataloader.dataset.data_root' for s in ('train', 'val', 'test'))
    assert e.value.remedy == 'sample-data'
    cli = explain_exception(e.value)
    assert cli.startswith(msg) and 'python tools/demo.py' in cli
    assert '--cfg-options train_dataloader.dataset.data_root=PATH' in cli
    assert isinstance(e.value, FileNotFoundError)  # what callers expect


def test_missing_annotation_file(tmp_path):
    root = make_split_folders(str(tmp_path / 'imagenet'))
    with pytest.raises(MissingFileError, match='meta/missing.txt'):
        build(data_root=root, split='val', ann_file='meta/missing.txt')
