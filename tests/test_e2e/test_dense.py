"""tools/train.py and tools/test.py end to end on the three dense tasks.

Each real config is made tiny (:func:`tests.utils.tiny_dense_config`:
tiny XCiT initialised from a ``--backbone-only`` converted timm checkpoint,
small images, same pipeline, model and evaluator types), trained for 2
iterations with an evaluation by mmdet's CocoMetric (bbox and segm, through
pycocotools) or mmseg's IoUMetric on tiny COCO / ADE20k data written here,
then tested from the saved checkpoint with ``--out`` and ``--show-dir``.
"""
import glob
import json
import math
import os.path as osp
import re

import pytest
from mmengine.fileio import load

from tests.utils import (
    REPO,
    convert_tiny_timm_backbone,
    explain,
    make_ade,
    make_coco,
    run_tool,
    tiny_dense_config,
)

TASKS = {
    # name: (config, patch, data, metric keys, checkpoint after training)
    'mask-rcnn': ('configs/mask_rcnn/mask-rcnn_xcit-s12-p16_fpn_3x_coco.py',
                  16, 'coco', ('coco/bbox_mAP', 'coco/bbox_mAP_50',
                               'coco/segm_mAP', 'coco/segm_mAP_50'),
                  'epoch_1.pth'),
    'upernet': ('configs/upernet/'
                'upernet_xcit-s12-p8_8xb2-160k_ade20k-512x512.py', 8, 'ade',
                ('aAcc', 'mIoU', 'mAcc'), 'iter_2.pth'),
    'sem-fpn': ('configs/sem_fpn/fpn_xcit-s12-p16_8xb2-80k_ade20k-512x512.py',
                16, 'ade', ('aAcc', 'mIoU', 'mAcc'), 'iter_2.pth'),
}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('dense_data')
    return dict(
        coco=make_coco(str(root / 'coco')) + '/',
        ade=make_ade(str(root / 'ade' / 'ADEChallengeData2016')),
        ckpt={p: str(root / f'tiny-p{p}_backbone.pth') for p in (16, 8)},
        tensors={p: convert_tiny_timm_backbone(
            str(root / f'tiny-p{p}_backbone.pth'), p) for p in (16, 8)})


def run_ok(*args) -> None:
    proc = run_tool(list(args), timeout=600)
    assert proc.returncode == 0, explain(proc)


def last_metrics(json_files, keys) -> dict:
    """The last logged record that holds the metric keys."""
    records = [json.loads(line) for f in json_files for line in open(f)]
    records = [r for r in records if keys[0] in r]
    assert records, f'no {keys[0]} logged in {json_files}'
    return records[-1]


def check_metrics(metrics: dict, keys) -> None:
    for key in keys:
        value = metrics[key]
        assert isinstance(value, float) and math.isfinite(value), key
        # COCO gives -1 where a category has no ground truth; IoU is in %
        assert -1 <= value <= 100, (key, value)


@pytest.mark.parametrize('task', list(TASKS))
def test_train_then_test(task, data, tmp_path):
    config, patch, dataset, keys, ckpt_name = TASKS[task]
    cfg = tiny_dense_config(osp.join(REPO, config), data_root=data[dataset],
                            checkpoint=data['ckpt'][patch])
    cfg_file = str(tmp_path / osp.basename(config))
    cfg.dump(cfg_file)

    work = str(tmp_path / 'train')
    run_ok('tools/train.py', cfg_file, '--work-dir', work)
    log, = glob.glob(f'{work}/*/*.log')
    log = open(log).read()
    # the backbone was initialised from the converted checkpoint, fully
    n = len([k for k in data['tensors'][patch]
             if not re.match(r'cls_token|cls_attn_blocks|norm\.', k)])
    assert (f'Loaded pretrained XCiT from {data["ckpt"][patch]}: '
            f'loaded={n}, missing=0, unexpected=0') in log
    assert 'Iter(train) [2/2]' in log or 'Epoch(train) [1][2/2]' in log
    val = last_metrics(glob.glob(f'{work}/*/vis_data/scalars.json'), keys)
    check_metrics(val, keys)

    test_dir = str(tmp_path / 'test')
    preds, show = str(tmp_path / 'preds.pkl'), str(tmp_path / 'show')
    run_ok('tools/test.py', cfg_file, osp.join(work, ckpt_name), '--work-dir',
           test_dir, '--out', preds, '--show-dir', show)
    test = last_metrics(glob.glob(f'{test_dir}/*/*.json'), keys)
    check_metrics(test, keys)
    # the checkpoint holds the model that was evaluated after training
    for key in keys:
        assert test[key] == pytest.approx(val[key], abs=1e-6), key
    results = load(preds)
    assert len(results) == 2  # the 2 validation images
    if task == 'mask-rcnn':
        instances = results[0]['pred_instances']
        assert {'bboxes', 'scores', 'masks'} <= set(instances)
    else:
        assert 'pred_sem_seg' in results[0]
    drawn = [f for f in glob.glob(f'{show}/**/*', recursive=True)
             if f.endswith(('.jpg', '.png'))]
    assert len(drawn) == 2
