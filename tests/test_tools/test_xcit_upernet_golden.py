"""The official evaluation path end to end: an official-layout UperNet file
-> ``xcit2mm.py --config`` -> ``tools/test.py`` gives the official logits.

The fixture ``tests/data/golden/xcit_upernet_p16.npz`` (see
``tools/misc/golden/xcit.py``) holds a tiny UperNet in the layout of the
official segmentation checkpoints (the official
``semantic_segmentation/backbone/xcit.py`` with its ``fpn1..4`` under
``backbone.*``, mmseg's ``UPerHead`` / ``FCNHead`` under ``decode_head.*`` /
``auxiliary_head.*``), two images of 512x683 and 600x512 (short side 512,
as real ADE20k evaluation scales every image, so the test pipeline keeps
their size; the long sides are not multiples of 16) and
the logits of that official model on them as mmseg's whole-image inference
computes them. Here the file is converted for the real UperNet config made
tiny, ``tools/test.py`` evaluates it on those images in an ADE20k layout
(the real Runner, pipeline, data preprocessor and IoU metric) and dumps its
predictions, whose logits must match within 1e-4 relative.
"""
import os
import os.path as osp
import pickle

import numpy as np
import torch

from tests.utils import REPO, load_tool, tiny_dense_config
from tests.utils.golden import assert_golden, load_golden

CONFIG = 'configs/upernet/upernet_xcit-s12-p16_8xb2-160k_ade20k-512x512.py'


def write_ade_validation(root: str, images: dict) -> str:
    """ADEChallengeData2016 validation split of the given BGR images, as
    PNG (lossless: the pixels the official model saw), with label maps."""
    import cv2
    for sub in ('images', 'annotations'):
        os.makedirs(osp.join(root, sub, 'validation'), exist_ok=True)
    for name, bgr in images.items():
        label = np.full(bgr.shape[:2], 3, np.uint8)
        label[: bgr.shape[0] // 2, : bgr.shape[1] // 3] = 1
        cv2.imwrite(osp.join(root, 'images', 'validation', name + '.png'),
                    bgr)
        cv2.imwrite(
            osp.join(root, 'annotations', 'validation', name + '.png'),
            label)
    return root


def test_official_upernet_through_xcit2mm_and_test_py(tmp_path):
    params, inputs, outputs, meta = load_golden('xcit_upernet_p16')
    images = {name: inputs[name].numpy() for name in inputs}
    # the long side (real ADE20k evaluation scales the short one to 512)
    assert all(max(img.shape[:2]) % 16 for img in images.values())
    data_root = write_ade_validation(str(tmp_path / 'ade'), images)

    C = meta['args']['embed_dim']
    head = meta['head']
    cfg = tiny_dense_config(
        osp.join(REPO, CONFIG), work_dir=str(tmp_path / 'work'),
        data_root=data_root, shrink=1,  # the real test scale (2048, 512)
        backbone=dict(arch=dict(embed_dims=C, depth=meta['args']['depth'],
                                num_heads=meta['args']['num_heads']),
                      out_indices=tuple(meta['args']['out_indices'])),
        channel_map={384: C})
    cfg.model.decode_head.update(channels=head['channels'],
                                 num_classes=head['num_classes'],
                                 pool_scales=tuple(head['pool_scales']))
    cfg.model.auxiliary_head.update(channels=head['aux_channels'],
                                    num_classes=head['num_classes'])
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.img_suffix = '.png'
    cfg_file = str(tmp_path / osp.basename(CONFIG))
    cfg.dump(cfg_file)

    # an mmcv 1.x / mmseg 0.x checkpoint file of the official code
    src = str(tmp_path / 'upernet_xcit_official.pth')
    torch.save(dict(meta=dict(mmcv_version='1.3.0'), state_dict=params),
               src)
    dst = str(tmp_path / 'converted.pth')
    assert load_tool('tools/model_converters/xcit2mm.py').main(
        [src, dst, '--config', cfg_file]) == 0

    out = str(tmp_path / 'preds.pkl')
    metrics = load_tool('tools/test.py').main(
        [cfg_file, dst, '--work-dir', str(tmp_path / 'work'), '--out', out])
    assert 'mIoU' in metrics
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == len(images)
    for pred in preds:
        name = osp.splitext(osp.basename(pred['img_path']))[0]
        logits = pred['seg_logits']['data']
        h, w = images[name].shape[:2]
        assert logits.shape == (head['num_classes'], h, w)
        assert_golden(logits[:, ::8, ::8], outputs[name], what=name)
