"""Checks of the data sets a config points at, with errors that name the
config key, the path and the fix.

:func:`check_data_paths` is cheap (it only looks at paths) and runs before
training or testing starts. :func:`check_coco_annotations` reads a whole
COCO json, so the tools run it (through :func:`diagnose_datasets`) only
after building a data set failed, to replace a parser's stack trace by the
first thing that is wrong in the file.
"""
import json
import numbers
import os
import os.path as osp
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from xcit_mm.datasets.imagenet import check_image_folder
from xcit_mm.utils.errors import AnnotationError, MissingFileError


def iter_dataset_cfgs(cfg: Any, loader_keys: Sequence[str]
                      ) -> Iterator[Tuple[str, dict]]:
    """(config key, dataset dict) for each data set under the loaders,
    through wrappers (``dataset=`` of RepeatDataset / ClassBalancedDataset,
    ``datasets=[...]`` of ConcatDataset)."""

    def walk(key: str, ds: Any) -> Iterator[Tuple[str, dict]]:
        if not isinstance(ds, dict):
            return
        yield key, ds
        if isinstance(ds.get('dataset'), dict):
            yield from walk(f'{key}.dataset', ds['dataset'])
        for i, sub in enumerate(ds.get('datasets') or []):
            yield from walk(f'{key}.datasets.{i}', sub)

    for loader_key in loader_keys:
        loader = cfg.get(loader_key)
        if isinstance(loader, dict) and isinstance(loader.get('dataset'),
                                                   dict):
            yield from walk(f'{loader_key}.dataset', loader['dataset'])


def _is_remote(path: str, ds: dict) -> bool:
    backend = (ds.get('backend_args') or {}).get('backend', 'local')
    return '://' in str(path) or backend != 'local'


def _join(data_root: str, path: str) -> str:
    if not data_root or osp.isabs(path):
        return path
    return osp.join(data_root, path)


def check_data_paths(cfg: Any, loader_keys: Sequence[str]) -> None:
    """Raise :class:`MissingFileError` for the first data set folder or
    annotation file that a loader's data set names and that does not exist.

    Follows mmengine's ``BaseDataset`` rules: ``ann_file`` and the values of
    ``data_prefix`` are relative to ``data_root`` unless absolute. Remote
    paths (``s3://``, non-local ``backend_args``) are not checked.

    Args:
        cfg (Config | dict): The config.
        loader_keys (Sequence[str]): e.g. ``['train_dataloader',
            'val_dataloader']``.
    """
    for key, ds in iter_dataset_cfgs(cfg, loader_keys):
        root = ds.get('data_root') or ''
        if str(ds.get('type', '')).split('.')[-1] == 'ImageNet' and \
                not _is_remote(root, ds):
            # ImageNet's own check says how to prepare the data set
            check_image_folder(root, ds.get('data_prefix') or ds.get(
                'split', ''), ds.get('ann_file') or '')
        if root and not _is_remote(root, ds) and not osp.isdir(root):
            raise _missing(
                f'{key}.data_root', root, 'data set folder', key)
        ann = ds.get('ann_file') or ''
        if ann and isinstance(ann, str) and not _is_remote(ann, ds):
            path = _join(root, ann)
            if not osp.isfile(path):
                raise _missing(
                    f'{key}.ann_file', path, 'annotation file', key)
        prefix = ds.get('data_prefix') or {}
        if isinstance(prefix, str):  # mmpretrain accepts a plain folder
            prefix = dict(img_path=prefix)
        for name, sub in prefix.items():
            if not sub or not isinstance(sub, str) or _is_remote(sub, ds):
                continue
            path = _join(root, sub)
            if not osp.isdir(path):
                raise _missing(
                    f'{key}.data_prefix.{name}', path, 'image folder', key)


def _missing(key: str, path: str, what: str,
             ds_key: str) -> MissingFileError:
    shown = path if osp.isabs(path) else f'{path} (= {osp.abspath(path)})'
    return MissingFileError(
        f'The {what} {shown} does not exist ({key} in the config). Put the '
        f'data there, or point the config at it: set {ds_key}.data_root '
        '(and the paths relative to it) in the config.',
        config_key=f'{ds_key}.data_root', config_value='/path/to/data')


# ------------------------------------------------------------------ COCO
def _bad(path: str, where: str, problem: str) -> AnnotationError:
    return AnnotationError(
        f'Malformed COCO annotation file {path}: {where} {problem}. Fix or '
        're-export the file; the COCO format is described at '
        'https://cocodataset.org/#format-data.')


def _is_num(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def check_coco_annotations(path: str, require_annotations: bool = True
                           ) -> dict:
    """Validate the structure of a COCO json; raise on the first problem.

    Checks: valid JSON; a dict with ``images``, ``categories`` (and
    ``annotations`` unless ``require_annotations=False``, e.g. for a
    test-dev image-info file); each image has an ``id``, a ``file_name``
    and positive ``width`` / ``height``; each category an ``id`` and a
    ``name``; each annotation an ``image_id`` and ``category_id`` that
    exist, a ``bbox`` of 4 numbers with non-negative size, and a
    ``segmentation`` that is a list of polygons (even length >= 6) or an
    RLE dict.

    Returns:
        dict: counts of images, categories and annotations.

    Raises:
        MissingFileError: the file does not exist.
        AnnotationError: the first problem, located (e.g.
            ``annotations[12].bbox``).
    """
    if not osp.isfile(path):
        raise MissingFileError(f'COCO annotation file {path} does not '
                                'exist.')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise _bad(path, 'the text', f'is not valid JSON ({e.msg} at line '
                   f'{e.lineno}, column {e.colno})') from None
    except UnicodeDecodeError as e:
        raise _bad(path, 'the file', f'is not UTF-8 text ({e})') from None
    if not isinstance(data, dict):
        raise _bad(path, 'the top level', f'is a {type(data).__name__}, not '
                   'an object with images, annotations and categories')
    keys = ['images', 'categories'] + (['annotations']
                                       if require_annotations else [])
    for key in keys:
        if not isinstance(data.get(key), list):
            got = ('missing' if key not in data else
                   f'a {type(data[key]).__name__}')
            raise _bad(path, f'"{key}"', f'is {got}, expected a list')
    image_ids = set()
    for i, img in enumerate(data['images']):
        where = f'images[{i}]'
        if not isinstance(img, dict):
            raise _bad(path, where, 'is not an object')
        for k in ('id', 'file_name', 'width', 'height'):
            if k not in img:
                raise _bad(path, where, f'has no "{k}"')
        if not (_is_num(img['width']) and _is_num(img['height'])
                and img['width'] > 0 and img['height'] > 0):
            raise _bad(path, where, f'has size {img["width"]}x'
                       f'{img["height"]}, expected positive numbers')
        image_ids.add(img['id'])
    cat_ids = set()
    for i, cat in enumerate(data['categories']):
        if not isinstance(cat, dict) or 'id' not in cat or 'name' not in cat:
            raise _bad(path, f'categories[{i}]', 'needs an "id" and a "name"')
        cat_ids.add(cat['id'])
    for i, ann in enumerate(data.get('annotations') or []):
        where = f'annotations[{i}]'
        if not isinstance(ann, dict):
            raise _bad(path, where, 'is not an object')
        if ann.get('image_id') not in image_ids:
            raise _bad(path, f'{where}.image_id',
                       f'= {ann.get("image_id")!r} is not an image id')
        if ann.get('category_id') not in cat_ids:
            raise _bad(path, f'{where}.category_id',
                       f'= {ann.get("category_id")!r} is not a category id')
        bbox = ann.get('bbox')
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(_is_num(v) for v in bbox)):
            raise _bad(path, f'{where}.bbox', f'= {bbox!r}, expected 4 '
                       'numbers [x, y, width, height]')
        if bbox[2] < 0 or bbox[3] < 0:
            raise _bad(path, f'{where}.bbox', f'= {bbox!r} has a negative '
                       'size')
        seg = ann.get('segmentation')
        if seg is not None and not _valid_segmentation(seg):
            raise _bad(path, f'{where}.segmentation', 'is neither a list of '
                       'polygons [x1, y1, x2, y2, ...] (at least 3 points) '
                       'nor an RLE dict with "counts" and "size"')
    return dict(images=len(data['images']),
                categories=len(data['categories']),
                annotations=len(data.get('annotations') or []))


def _valid_segmentation(seg: Any) -> bool:
    if isinstance(seg, dict):
        return 'counts' in seg and 'size' in seg
    if isinstance(seg, list):
        return all(
            isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
            and all(_is_num(v) for v in p) for p in seg)
    return False


def _is_coco_dataset(ds: dict, default_scope: Optional[str]) -> bool:
    """Whether the dataset type is mmdet's CocoDataset or a subclass."""
    t = ds.get('type')
    if isinstance(t, type):
        cls = t
    else:
        from mmengine.registry import DATASETS
        try:
            with DATASETS.switch_scope_and_registry(default_scope) as reg:
                cls = reg.get(t) if isinstance(t, str) else None
        except Exception:
            cls = None
    if cls is None:
        return 'coco' in str(t).lower()
    return any(c.__name__ == 'CocoDataset' for c in cls.__mro__)


def diagnose_datasets(cfg: Any, loader_keys: Sequence[str]) -> None:
    """Look for the cause of a failed data set build; raise it clearly.

    Runs :func:`check_data_paths`, then :func:`check_coco_annotations` on
    every COCO data set's ``ann_file``. Returns quietly when it finds
    nothing, so the caller re-raises the original error.
    """
    check_data_paths(cfg, loader_keys)
    scope = cfg.get('default_scope')
    seen: List[str] = []
    for key, ds in iter_dataset_cfgs(cfg, loader_keys):
        ann = ds.get('ann_file')
        if (isinstance(ann, str) and ann.endswith('.json')
                and not _is_remote(ann, ds) and _is_coco_dataset(ds, scope)):
            path = _join(ds.get('data_root') or '', ann)
            if path in seen:
                continue
            seen.append(path)
            check_coco_annotations(
                path, require_annotations=not ds.get('test_mode', False))
    for key, ds in iter_dataset_cfgs(cfg, loader_keys):
        check_folder_has_images(key, ds)


def check_folder_has_images(key: str, ds: dict) -> None:
    """Raise :class:`MissingFileError` for a folder-style data set
    (mmpretrain's ``CustomDataset`` / ``ImageNet`` without ``ann_file``)
    whose class subfolders hold no image: mmpretrain says only 'Found 0
    files in subfolders'."""
    if ds.get('ann_file') or _is_remote(ds.get('data_root') or '', ds):
        return
    prefix = ds.get('data_prefix') or ''
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', '')
    folder = _join(ds.get('data_root') or '', prefix or '')
    if not folder or not osp.isdir(folder):
        return
    import inspect

    from mmpretrain.datasets import CustomDataset
    extensions = tuple(e.lower() for e in ds.get('extensions') or inspect.
                       signature(CustomDataset).parameters['extensions'].
                       default)
    classes = sorted(d for d in os.listdir(folder)
                     if osp.isdir(osp.join(folder, d)))
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(extensions) for f in files):
            return
    shown = ', '.join(classes[:5]) + (' ...' if len(classes) > 5 else '')
    what = (f'its {len(classes)} class subfolders ({shown}) hold'
            if classes else 'it has no class subfolders and holds')
    raise MissingFileError(
        f'The image folder {folder} ({key}.data_root / data_prefix in the '
        f'config) exists, but {what} no image file '
        f'({", ".join(extensions)}). Put the images in '
        f'{folder}/<class>/<image>, or point the config at the folder that '
        'holds them.', config_key=f'{key}.data_root',
        config_value='/path/to/data')
