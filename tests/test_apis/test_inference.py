"""Inference and ONNX export from checkpoints trained here.

One module-scoped fixture trains, with the real Runner, tiny versions of the
shipped configs: the digits demo classifier (1-channel XCiT, the README's
first command), the digits DINO demo, Mask R-CNN and Semantic FPN with
XCiT (made tiny by :func:`tests.utils.tiny_dense_config`).
Every test then reads those checkpoints the way a user does.
"""
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch

from tests.utils import (
    REPO,
    load_tool,
    make_ade,
    make_coco,
    tiny_dense_config,
)
from xcit_mm.utils.errors import CheckpointMismatchError

pytest.importorskip('onnxruntime')

def digits_folder(root: str) -> str:
    """root/{train,val}/<digit>/*.png: 8x8 grayscale digits (3 per class)
    from scikit-learn, as tools/demo.py writes them."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    for split, start in (('train', 0), ('val', 3)):
        for c in range(10):
            idx = np.flatnonzero(digits.target == c)[start:start + 3]
            os.makedirs(osp.join(root, split, str(c)), exist_ok=True)
            for i in idx:
                img = np.round(digits.images[i] * (255 / 16)).astype(np.uint8)
                cv2.imwrite(osp.join(root, split, str(c), f'{i:04d}.png'),
                            img)
    return root


def train(cfg, work_dir: str) -> str:
    """Train ``cfg`` with its runner; the last checkpoint's path."""
    from mmengine.registry import RUNNERS
    cfg.work_dir = work_dir
    cfg.default_hooks.checkpoint = dict(
        type='xcit_mm.AtomicCheckpointHook', interval=1,
        by_epoch=cfg.train_cfg.get('type', '').endswith('EpochBasedTrainLoop')
        or 'max_epochs' in cfg.train_cfg)
    cfg.default_hooks.pop('visualization', None)
    RUNNERS.build(cfg).train()
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    from tests.utils import load_config
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('inference')
    digits = digits_folder(str(root / 'digits'))
    out = dict(digits=digits)

    cfg = load_config(osp.join(REPO, 'configs/xcit/xcit-digits_demo.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = digits
    cfg.train_dataloader.batch_size = 10
    cfg.train_cfg.update(max_epochs=1, val_interval=10)
    out['cls'] = (cfg, train(cfg, str(root / 'cls')))

    cfg = load_config(osp.join(REPO, 'configs/dino/dino_xcit-digits_demo.py'))
    cfg.train_dataloader.dataset.data_root = digits
    cfg.train_dataloader.batch_size = 10
    for key in ('knn_train_dataloader', 'knn_val_dataloader'):
        cfg[key].dataset.data_root = digits
    cfg.train_cfg.max_epochs = 1
    cfg.custom_hooks = [h for h in cfg.custom_hooks
                        if h['type'] != 'xcit_mm.KNNEvalHook']
    out['dino'] = (cfg, train(cfg, str(root / 'dino')))

    coco = make_coco(str(root / 'coco'), num_images=2, num_val=1) + '/'
    cfg = tiny_dense_config(osp.join(
        REPO, 'configs/mask_rcnn/mask-rcnn_xcit-s12-p16_fpn_1x_coco.py'),
        data_root=coco)
    cfg.train_cfg.val_interval = 10
    out['det'] = (cfg, train(cfg, str(root / 'det')))
    out['coco'] = coco

    ade = make_ade(str(root / 'ade' / 'ADEChallengeData2016'), num_images=2,
                   num_val=1)
    cfg = tiny_dense_config(osp.join(
        REPO, 'configs/sem_fpn/fpn_xcit-s12-p16_8xb2-80k_ade20k-512x512.py'),
        data_root=ade)
    cfg.train_cfg.update(max_iters=1, val_interval=10)
    out['seg'] = (cfg, train(cfg, str(root / 'seg')))
    out['ade'] = ade
    return out


def mmpretrain_pipeline(dataloader):
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import TRANSFORMS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Compose([TRANSFORMS.build(t)
                        for t in dataloader.dataset.pipeline])


def test_demo_checkpoint_in_mmpretrain_apis(trained, tmp_path):
    """The 1-channel digits demo in mmpretrain's own inference API:
    ``inference_model`` knows the task of a model built from a config, the
    checkpoint (saved by mmengine on torch >= 2.6) loads, and the colour
    image the inferencer decodes reaches the model as 1 channel, with the
    scores that the test pipeline's model call gives."""
    from mmpretrain import ImageClassificationInferencer, inference_model

    from xcit_mm.apis import init_model
    cfg, ckpt = trained['cls']
    model = init_model(cfg, ckpt)
    gray = osp.join(trained['digits'], 'val', '7',
                    sorted(os.listdir(osp.join(trained['digits'], 'val',
                                               '7')))[0])
    color = str(tmp_path / 'color.png')  # a user's RGB file of a digit
    cv2.imwrite(color, cv2.cvtColor(cv2.imread(gray, 0), cv2.COLOR_GRAY2BGR))

    result = inference_model(model, color)
    assert result['pred_class'] in [str(c) for c in range(10)]
    by_inferencer, = ImageClassificationInferencer(model)(color)

    # the model on the config's own pipeline (file read as grayscale)
    from mmengine.dataset import pseudo_collate
    pipeline = mmpretrain_pipeline(cfg.test_dataloader)
    data = pseudo_collate([pipeline(dict(img_path=gray))])
    assert data['inputs'][0].shape[0] == 1
    with torch.no_grad():
        expected = model.test_step(data)[0].pred_score.numpy()
    np.testing.assert_allclose(by_inferencer['pred_scores'], expected,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result['pred_scores'], expected, rtol=1e-5,
                               atol=1e-6)


def test_infer_tool_folder_with_a_broken_image(trained, tmp_path, capsys):
    cfg, ckpt = trained['cls']
    cfg_file = str(tmp_path / 'digits.py')
    cfg.dump(cfg_file)
    folder = tmp_path / 'images'
    shutil.copytree(osp.join(trained['digits'], 'val', '3'), folder)
    (folder / 'broken.png').write_bytes(b'not an image')
    n = len(os.listdir(folder))
    rc = load_tool('tools/infer.py').main(
        [cfg_file, ckpt, str(folder), '--out-dir', str(tmp_path / 'out'),
         '--topk', '2'])
    out, err = capsys.readouterr()
    assert rc == 1, err
    assert err.count('infer.py: error:') == 1
    assert 'broken.png' in err and 'not a decodable image' in err
    assert 'Traceback' not in err
    # (mmpretrain's progress bar shares the lines)
    lines = [line for line in out.splitlines() if f'{folder}/' in line]
    assert len(lines) == n - 1, out
    assert f'{n - 1} of {n} image(s) done; 1 could not be read' in out
    assert len(os.listdir(tmp_path / 'out' / 'vis')) == n - 1


def test_dino_teacher_features_and_retrieval(trained, tmp_path, capsys):
    from mmengine.dataset import default_collate

    from xcit_mm.apis import get_inferencer
    cfg, ckpt = trained['dino']
    folder = tmp_path / 'gallery'
    shutil.copytree(osp.join(trained['digits'], 'val'), folder)
    query = osp.join(folder, '5', sorted(os.listdir(folder / '5'))[0])
    feat, = get_inferencer(cfg, ckpt)(query)

    # the teacher backbone on the k-NN evaluation pipeline
    from xcit_mm.apis import init_model
    model = init_model(cfg, ckpt)
    pipeline = mmpretrain_pipeline(cfg.knn_val_dataloader)
    data = model.data_preprocessor(
        default_collate([pipeline(dict(img_path=query))]), False)
    with torch.no_grad():
        expected = model.teacher['backbone'](data['inputs'])[-1][0]
    assert feat.shape == (96, )
    torch.testing.assert_close(feat, expected)

    copy = str(tmp_path / 'copy_of_query.png')
    shutil.copy(query, copy)
    cfg_file = str(tmp_path / 'dino.py')
    cfg.dump(cfg_file)
    rc = load_tool('tools/infer.py').main(
        [cfg_file, ckpt, str(folder), copy, '--retrieve', query, '--topk',
         '3', '--out-dir', str(tmp_path / 'out')])
    out = capsys.readouterr().out
    assert rc == 0
    ranked = [line.split() for line in out.splitlines()
              if line.strip()[:2] in ('1.', '2.', '3.')]
    assert ranked[0][2] == copy and float(ranked[0][1]) == pytest.approx(1.)
    assert len(os.listdir(tmp_path / 'out' / 'features')) == 31


def test_det_and_seg_inferencers(trained):
    from xcit_mm.apis import get_inferencer
    cfg, ckpt = trained['det']
    img = osp.join(trained['coco'], 'val2017',
                   sorted(os.listdir(osp.join(trained['coco'], 'val2017')))[0])
    det = get_inferencer(cfg, ckpt)(img, return_datasamples=True)
    pred = det['predictions'][0].pred_instances
    assert {'bboxes', 'scores', 'labels', 'masks'} <= set(pred.keys())

    cfg, ckpt = trained['seg']
    folder = osp.join(trained['ade'], 'images', 'validation')
    img = osp.join(folder, sorted(os.listdir(folder))[0])
    seg = get_inferencer(cfg, ckpt)(img)
    h, w = cv2.imread(img).shape[:2]
    assert np.asarray(seg['predictions']).shape == (h, w)

    # a checkpoint of another model is refused, not half-loaded
    with pytest.raises(CheckpointMismatchError):
        get_inferencer(cfg, trained['det'][1])


@pytest.mark.parametrize('task,shape', [
    ('cls', (32, 32)),       # XCiT, 1 channel: positional encoding per grid
    ('seg', (64, 96)),       # XCiT Semantic FPN, logits at input size
    ('det', (64, 96)),       # XCiT Mask R-CNN backbone + FPN
])
def test_export_dynamic_verify_two_sizes(trained, task, shape, tmp_path,
                                         capsys):
    cfg, ckpt = trained[task]
    cfg_file = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_file)
    out = str(tmp_path / 'model.onnx')
    rc = load_tool('tools/deployment/export.py').main(
        [cfg_file, ckpt, '--shape', *map(str, shape), '--dynamic',
         '--verify', '--out', out])
    text = capsys.readouterr().out
    assert rc == 0, text
    verified = [line for line in text.splitlines()
                if line.startswith('verify')]
    sizes = {line.split()[1] for line in verified}
    assert len(sizes) == 2 and all(line.endswith(' ok') for line in verified)
    assert osp.isfile(out)


def test_export_without_onnx_names_the_install(trained, tmp_path,
                                               monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, 'onnxscript', None)
    cfg, ckpt = trained['cls']
    cfg_file = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_file)
    rc = load_tool('tools/deployment/export.py').main([cfg_file, ckpt])
    err = capsys.readouterr().err
    assert rc == 1
    assert 'pip install -r requirements/deploy.txt' in err
    assert 'Traceback' not in err
