"""tools/train.py and tools/test.py end to end with a CrossFormer backbone:
the real Mask R-CNN and UperNet configs made tiny (a 16-channel CrossFormer
initialised from an official-layout ImageNet file converted with
``crossformer2mm.py --backbone-only``), trained for 2 iterations and
evaluated by mmdet's CocoMetric / mmseg's IoUMetric on tiny data, then
tested from the checkpoint."""
import glob
import os.path as osp

import pytest
import torch

from tests.test_e2e.test_dense import check_metrics, last_metrics, run_ok
from tests.utils import REPO, load_tool, make_ade, make_coco, tiny_dense_config
from xcit_mm.models import CrossFormer

TINY = dict(arch=dict(embed_dims=16, depths=(1, 1, 2, 1),
                      num_heads=(1, 2, 2, 4)))
#: CrossFormer-S output widths -> the tiny arch's.
CHANNELS = {96: 16, 192: 32, 384: 64, 768: 128}
TASKS = {
    'mask-rcnn': ('configs/mask_rcnn/mask-rcnn_crossformer-s_fpn_1x_coco.py',
                  'coco', ('coco/bbox_mAP', 'coco/segm_mAP'), 'epoch_1.pth'),
    'upernet': ('configs/upernet/'
                'upernet_crossformer-s_8xb2-160k_ade20k-512x512.py', 'ade',
                ('aAcc', 'mIoU', 'mAcc'), 'iter_2.pth'),
}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('crossformer_dense')
    # an official-layout ImageNet file (weights under `model`, with head)
    torch.manual_seed(0)
    model = CrossFormer(TINY['arch'])
    sd = dict(model.state_dict(), **{
        'head.weight': torch.randn(10, 128), 'head.bias': torch.zeros(10)})
    src, dst = str(root / 'official.pth'), str(root / 'tiny_backbone.pth')
    torch.save(dict(model=sd, epoch=300), src)
    tool = load_tool('tools/model_converters/crossformer2mm.py')
    assert tool.main([src, dst, '--backbone-only']) == 0
    return dict(coco=make_coco(str(root / 'coco')) + '/',
                ade=make_ade(str(root / 'ade' / 'ADEChallengeData2016')),
                ckpt=dst, n_tensors=len(sd) - 4)


@pytest.mark.parametrize('task', list(TASKS))
def test_train_then_test(task, data, tmp_path):
    config, dataset, keys, ckpt_name = TASKS[task]
    cfg = tiny_dense_config(osp.join(REPO, config), data_root=data[dataset],
                            checkpoint=data['ckpt'], backbone=TINY,
                            channel_map=CHANNELS)
    cfg_file = str(tmp_path / osp.basename(config))
    cfg.dump(cfg_file)
    work = str(tmp_path / 'train')
    run_ok('tools/train.py', cfg_file, '--work-dir', work)
    log = open(glob.glob(f'{work}/*/*.log')[0]).read()
    assert (f'Loaded pretrained CrossFormer from {data["ckpt"]}: '
            f'loaded={data["n_tensors"]}, missing=0, unexpected=0, '
            'skipped_classification_only=0, format=backbone') in log
    val = last_metrics(glob.glob(f'{work}/*/vis_data/scalars.json'), keys)
    check_metrics(val, keys)
    test_dir = str(tmp_path / 'test')
    run_ok('tools/test.py', cfg_file, osp.join(work, ckpt_name),
           '--work-dir', test_dir)
    test = last_metrics(glob.glob(f'{test_dir}/*/*.json'), keys)
    for key in keys:
        assert test[key] == pytest.approx(val[key], abs=1e-6), key
