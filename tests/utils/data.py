"""Tiny synthetic data sets, written by code (seeded)."""
import json
import os
import os.path as osp

import numpy as np

from tests.utils.tools import REPO  # noqa: F401


def make_image_folder(root: str, num_classes: int = 2, per_class: int = 4,
                      size: int = 32, seed: int = 0) -> str:
    """ImageNet-style folder (root/class_i/*.png) of random images whose
    class is visible in the mean colour."""
    import cv2
    rng = np.random.default_rng(seed)
    for c in range(num_classes):
        d = osp.join(root, f'class_{c}')
        os.makedirs(d, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            img[..., c % 3] += np.uint8(120)
            cv2.imwrite(osp.join(d, f'{i}.png'), img)
    return root


def make_split_folders(root: str, num_classes: int = 2, per_class: int = 4,
                       size: int = 32) -> str:
    """root/{train,val}/class_i/*.png (an ImageNet-style split)."""
    make_image_folder(osp.join(root, 'train'), num_classes, per_class, size,
                      seed=0)
    make_image_folder(osp.join(root, 'val'), num_classes, per_class, size,
                      seed=1)
    return root


def _hw(size) -> tuple:
    """An int or (h, w) -> (h, w)."""
    return (size, size) if isinstance(size, int) else tuple(size)


def _random_shapes(rng, h: int, w: int, n: int):
    """n random (x0, y0, x1, y1) boxes of at least 12 px inside h x w."""
    boxes = []
    for _ in range(n):
        bw, bh = rng.integers(12, w // 2), rng.integers(12, h // 2)
        x0, y0 = rng.integers(0, w - bw), rng.integers(0, h - bh)
        boxes.append((int(x0), int(y0), int(x0 + bw), int(y0 + bh)))
    return boxes


def make_coco(root: str, num_images: int = 4, num_val: int = 2,
              size=(64, 80), seed: int = 0) -> str:
    """COCO 2017 layout (train2017/, val2017/, annotations/instances_*.json)
    of random ``size`` (an int or (h, w)) JPEG images, ``num_images`` for
    training and ``num_val`` for validation, each with 1 to 3 filled
    rectangles and triangles, annotated with a box and a polygon mask
    (categories 1 to 3: person, bicycle, car). The json lists mmdet's 80
    COCO classes, as the real file does. Returns ``root``."""
    import cv2
    from mmdet.datasets import CocoDataset
    rng = np.random.default_rng(seed)
    h, w = _hw(size)
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(
        CocoDataset.METAINFO['classes'])]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    for split, n in (('train2017', num_images), ('val2017', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, anns = [], []
        for i in range(n):
            img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            for j, (x0, y0, x1, y1) in enumerate(
                    _random_shapes(rng, h, w, int(rng.integers(1, 4)))):
                if j % 2:  # triangle
                    poly = [x0, y1, x1, y1, (x0 + x1) / 2, y0]
                else:
                    poly = [x0, y0, x1, y0, x1, y1, x0, y1]
                pts = np.array(poly, np.float32).reshape(-1, 2)
                cv2.fillPoly(img, [pts.round().astype(np.int32)],
                             (60 + 90 * j, 200, 255 - 60 * j))
                xs, ys = pts[:, 0], pts[:, 1]
                anns.append(dict(
                    id=len(anns) + 1, image_id=i + 1,
                    category_id=1 + j % 3,
                    bbox=[float(xs.min()), float(ys.min()),
                          float(xs.max() - xs.min()),
                          float(ys.max() - ys.min())],
                    area=float(cv2.contourArea(pts)),
                    segmentation=[[float(v) for v in poly]], iscrowd=0))
            name = f'{i:012d}.jpg'
            cv2.imwrite(osp.join(root, split, name), img)
            images.append(dict(id=i + 1, file_name=name, height=h, width=w))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'),
                  'w') as f:
            json.dump(dict(images=images, annotations=anns,
                           categories=categories), f)
    return root


def make_ade(root: str, num_images: int = 4, num_val: int = 2,
             size=(96, 128), seed: int = 0) -> str:
    """ADEChallengeData2016 layout (images/{training,validation}/*.jpg,
    annotations/{training,validation}/*.png; ``num_images`` / ``num_val``
    of each, ``size`` an int or (h, w)): label maps in 0..150 (0 is
    'other', ignored by mmseg's reduce_zero_label; a 4-pixel strip at the
    top) on background class 3, with rectangles of classes 1, 2 and 150
    drawn in that order, also drawn into the image. Returns ``root``."""
    import cv2
    rng = np.random.default_rng(seed)
    h, w = _hw(size)
    for split, n in (('training', num_images), ('validation', num_val)):
        for sub in ('images', 'annotations'):
            os.makedirs(osp.join(root, sub, split), exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            label = np.full((h, w), 3, np.uint8)  # background class 3
            label[:4] = 0  # a strip of 'other'
            for j, (x0, y0, x1, y1) in enumerate(
                    _random_shapes(rng, h, w, 3)):
                cls = (1, 2, 150)[j]
                label[y0:y1, x0:x1] = cls
                img[y0:y1, x0:x1] = (40 * j, 120 + 40 * j, 200)
            name = f'ADE_{split[:5]}_{i:08d}'
            cv2.imwrite(osp.join(root, 'images', split, name + '.jpg'), img)
            cv2.imwrite(osp.join(root, 'annotations', split, name + '.png'),
                        label)
    return root
