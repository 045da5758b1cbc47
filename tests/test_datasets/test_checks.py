"""Data set path checks, the COCO json validator and the image loader."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger

from tests.utils import make_image_folder
from xcit_mm.datasets import LoadImageFromFile
from xcit_mm.datasets.checks import (
    check_coco_annotations,
    check_data_paths,
    diagnose_datasets,
)
from xcit_mm.utils.errors import (
    AnnotationError,
    ImageLoadError,
    MissingFileError,
)


def _coco(**changes):
    data = dict(
        images=[dict(id=1, file_name='a.jpg', width=8, height=6)],
        categories=[dict(id=3, name='cat')],
        annotations=[dict(id=1, image_id=1, category_id=3, bbox=[0, 0, 4, 3],
                          area=12, iscrowd=0,
                          segmentation=[[0, 0, 4, 0, 4, 3]])])
    for key, value in changes.items():
        section, index, field = key.split('__')
        if field == 'DROP':
            data[section][int(index)].clear()
        else:
            data[section][int(index)][field] = value
    return data


@pytest.mark.parametrize('changes,where', [
    (dict(annotations__0__bbox=[0, 0, 4]), 'annotations[0].bbox'),
    (dict(annotations__0__bbox=[0, 0, -1, 3]), 'negative size'),
    (dict(annotations__0__image_id=7), 'annotations[0].image_id = 7'),
    (dict(annotations__0__category_id=1), 'is not a category id'),
    (dict(annotations__0__segmentation=[[0, 0, 1]]), 'segmentation'),
    (dict(images__0__width=0), 'images[0] has size 0x6'),
    (dict(categories__0__DROP=None), 'categories[0] needs an "id"'),
])
def test_coco_problems_are_located(tmp_path, changes, where):
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(_coco(**changes)))
    with pytest.raises(AnnotationError, match='Malformed COCO') as info:
        check_coco_annotations(str(path))
    assert where in str(info.value)


def test_coco_valid_and_structure(tmp_path):
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(_coco()))
    assert check_coco_annotations(str(path)) == dict(
        images=1, categories=1, annotations=1)
    path.write_text(json.dumps({'images': [], 'categories': []}))
    with pytest.raises(AnnotationError, match='"annotations" is missing'):
        check_coco_annotations(str(path))
    check_coco_annotations(str(path), require_annotations=False)  # test-dev
    path.write_text('[1, 2]')
    with pytest.raises(AnnotationError, match='is a list, not an object'):
        check_coco_annotations(str(path))
    with pytest.raises(MissingFileError):
        check_coco_annotations(str(tmp_path / 'none.json'))


def test_data_paths_through_wrappers(tmp_path):
    (tmp_path / 'coco' / 'train2017').mkdir(parents=True)
    (tmp_path / 'coco' / 'ann.json').write_text(json.dumps(_coco()))
    ok = dict(type='CocoDataset', data_root=str(tmp_path / 'coco'),
              ann_file='ann.json', data_prefix=dict(img='train2017/'))
    bad = dict(ok, data_prefix=dict(img='val2017/'))
    cfg = Config(dict(default_scope='mmdet', train_dataloader=dict(
        dataset=dict(type='ConcatDataset', datasets=[
            ok, dict(type='RepeatDataset', times=2, dataset=bad)]))))
    with pytest.raises(MissingFileError) as info:
        check_data_paths(cfg, ['train_dataloader'])
    msg = str(info.value)
    assert 'image folder' in msg and 'val2017' in msg
    assert 'train_dataloader.dataset.datasets.1.dataset.data_prefix.img' in msg
    check_data_paths(cfg, ['val_dataloader'])  # no such loader: nothing
    cfg.train_dataloader.dataset.datasets[1].dataset = ok
    diagnose_datasets(cfg, ['train_dataloader'])  # finds nothing wrong
    (tmp_path / 'coco' / 'ann.json').write_text('{')
    with pytest.raises(AnnotationError, match='not valid JSON'):
        diagnose_datasets(cfg, ['train_dataloader'])


def test_load_image_raise_or_skip(tmp_path, capsys):
    root = make_image_folder(str(tmp_path), num_classes=1, per_class=1)
    good = osp.join(root, 'class_0', '0.png')
    empty = tmp_path / 'empty.png'
    empty.touch()
    junk = tmp_path / 'junk.jpg'
    junk.write_bytes(b'\x00' * 100)
    loader = LoadImageFromFile()
    assert loader(dict(img_path=good))['img'].shape == (32, 32, 3)
    for path, problem in ((empty, 'it is empty (0 bytes)'),
                          (junk, 'not a decodable image (100 bytes)'),
                          (tmp_path / 'gone.png', 'it does not exist')):
        with pytest.raises(ImageLoadError) as info:
            loader(dict(img_path=str(path)))
        assert problem in str(info.value)
    MMLogger.get_instance('test_load_image_skip')  # logs to captured stdout
    skipper = LoadImageFromFile(on_error='skip')
    assert skipper(dict(img_path=str(empty))) is None
    assert skipper(dict(img_path=str(empty))) is None  # warned once
    out = capsys.readouterr().out
    assert out.count('Skipping image') == 1
    assert isinstance(skipper(dict(img_path=good))['img'], np.ndarray)
    with pytest.raises(ValueError, match='on_error'):
        LoadImageFromFile(on_error='ignore')
