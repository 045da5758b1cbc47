"""``tools/test.py --tta`` on a segmentation config, which inherits mmseg's
``tta_model`` (SegTTAModel) and ``tta_pipeline``: the strict checkpoint
check sees the model inside the TTA wrapper, as mmengine's loader does."""
import glob
import json
import os.path as osp

import torch
from mmengine.registry import init_default_scope

from tests.utils import REPO, explain, make_ade, run_tool, tiny_dense_config

CONFIG = 'configs/sem_fpn/fpn_xcit-s12-p16_8xb2-80k_ade20k-512x512.py'


def test_tta_with_a_seg_config(tmp_path):
    data = make_ade(str(tmp_path / 'ade' / 'ADEChallengeData2016'),
                       num_images=1, num_val=1, size=(48, 64))
    cfg = tiny_dense_config(osp.join(REPO, CONFIG), data_root=data)
    aug = cfg.tta_pipeline[-1]
    assert aug.type == 'TestTimeAug'
    aug.transforms[0] = aug.transforms[0][1::3]  # 2 of the 6 scales
    cfg_file = str(tmp_path / 'tiny.py')
    cfg.dump(cfg_file)

    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)

    work = str(tmp_path / 'test')
    proc = run_tool(['tools/test.py', cfg_file, ckpt, '--tta',
                     '--work-dir', work])
    assert proc.returncode == 0, explain(proc)
    result, = glob.glob(f'{work}/*/*.json')
    metrics = json.loads(open(result).read().splitlines()[-1])
    assert {'aAcc', 'mIoU', 'mAcc'} <= set(metrics)
