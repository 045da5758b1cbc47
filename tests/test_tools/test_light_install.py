"""The light install (``tools/install.sh --light``: mmcv-lite, no compiled
``mmcv.ops``): classification configs pass the environment check, and a
detection or segmentation config stops tools/train.py and tools/test.py
with one paragraph that gives the upgrade command, exit status 1.

The light install is simulated by ``sys.modules['mmcv._ext'] = None``:
mmcv-lite ships ``mmcv/ops/*.py`` but not the compiled ``mmcv._ext``, so
``import mmcv.ops`` fails there on that import.
"""
import sys

import pytest
from mmengine.config import Config

from tests.utils import REPO, explain, run_tool
from xcit_mm.cli.config_checks import check_task_stack
from xcit_mm.utils.errors import MissingDependencyError

MASK_RCNN = 'configs/mask_rcnn/mask-rcnn_xcit-t12-p16_fpn_1x_coco.py'
UPERNET = 'configs/upernet/upernet_xcit-t12-p16_8xb2-160k_ade20k-512x512.py'
#: Runs a tool with mmcv.ops blocked, as on the light install.
LIGHT = ("import runpy, sys; sys.modules['mmcv._ext'] = None; "
         'sys.argv = sys.argv[1:]; '
         "runpy.run_path(sys.argv[0], run_name='__main__')")


def test_check_task_stack(monkeypatch):
    monkeypatch.setitem(sys.modules, 'mmcv._ext', None)
    monkeypatch.setitem(sys.modules, 'mmcv.ops', None)  # if imported before
    # classification: mmpretrain never imports mmcv.ops
    check_task_stack(Config.fromfile(f'{REPO}/configs/xcit/'
                                     'xcit-digits_demo.py'))
    # an mmpretrain config that borrows one mmdet module needs the ops too
    cfg = Config(dict(default_scope='mmpretrain',
                      model=dict(type='ImageClassifier',
                                 neck=dict(type='mmdet.FPN'))))
    with pytest.raises(MissingDependencyError, match=r'detection \(mmdet\)'):
        check_task_stack(cfg)
    with pytest.raises(ImportError, match='bash tools/install.sh'):
        check_task_stack(Config.fromfile(f'{REPO}/{UPERNET}'))


CROSSFORMER_MASK_RCNN = ('configs/mask_rcnn/'
                         'mask-rcnn_crossformer-s_fpn_1x_coco.py')


@pytest.mark.parametrize('tool,args,task', [
    ('tools/train.py', [MASK_RCNN], 'detection (mmdet)'),
    ('tools/test.py', [UPERNET, 'no_such.pth'], 'segmentation (mmseg)'),
    # every tool that builds a dense model or pipeline
    ('tools/analysis_tools/get_flops.py', [CROSSFORMER_MASK_RCNN],
     'detection (mmdet)'),
    ('tools/analysis_tools/browse_dataset.py', [MASK_RCNN, '-o', 'unused'],
     'detection (mmdet)'),
])
def test_dense_config_on_light_install(tmp_path, tool, args, task):
    work = (['--work-dir', str(tmp_path / 'work')]
            if tool in ('tools/train.py', 'tools/test.py') else [])
    proc = run_tool(['-c', LIGHT, tool] + args + work)
    assert proc.returncode == 1, explain(proc)
    name = tool.split('/')[-1]
    assert 'Traceback' not in proc.stderr, explain(proc)
    # one paragraph, the last thing printed (library warnings may precede it)
    err = proc.stderr[proc.stderr.index(f'{name}: error: '):].strip()
    assert '\n\n' not in err
    text = ' '.join(err.split())
    assert text.startswith(f'{name}: error: The config {args[0]} runs {task}')
    assert 'mmcv.ops' in text and 'light install (mmcv-lite)' in text
    assert '`bash tools/install.sh' in text
    assert not (tmp_path / 'work').exists()
