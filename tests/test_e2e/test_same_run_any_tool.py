"""The config is what runs: the same config trained by xcit_mm's
``tools/train.py`` and by mmpretrain's, mmdet's and mmseg's own
``tools/train.py`` (the copies pip installs under ``<lib>/.mim/tools/``)
ends with bit-identical weights, also when the library's run is killed in
the middle and resumed with the library's ``--resume``.

Each case is a shipped config made small (tiny data written here, fewer
iterations), unchanged otherwise: its runtime base names xcit_mm.Runner,
the resumable loop, the atomic checkpoint hook and the others, so no tool
needs to add them.
"""
import importlib.util
import os.path as osp
import signal

import pytest
import torch
from mmengine.config import Config

from tests.utils import (
    REPO,
    explain,
    make_ade,
    make_coco,
    make_split_folders,
    run_tool,
    tiny_dense_config,
    write_config,
)
from xcit_mm.runtime import safe_load


def library_train_py(lib: str) -> str:
    """``<site-packages>/<lib>/.mim/tools/train.py``, as pip installs it."""
    path = osp.join(osp.dirname(importlib.util.find_spec(lib).origin),
                    '.mim', 'tools', 'train.py')
    assert osp.isfile(path), f'{lib} ships no tools/train.py at {path}'
    return path


def train(script: str, cfg: str, work_dir: str, *extra: str):
    return run_tool([script, cfg, '--work-dir', work_dir, *extra],
                    timeout=600)


def final_weights(work_dir: str, name: str) -> dict:
    return safe_load(osp.join(work_dir, name))['state_dict']


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'


def with_kill(cfg_path: str, iteration: int) -> str:
    """The same config plus a hook that SIGKILLs the run just before
    ``iteration`` (after the previous iteration's checkpoint)."""
    hooks = [h.to_dict() for h in Config.fromfile(cfg_path).get(
        'custom_hooks', [])]
    return write_config(cfg_path[:-3] + '_killed.py', f'''
_base_ = [{cfg_path!r}]
custom_imports = dict(imports=['tests.faults'], allow_failed_imports=False)
custom_hooks = {hooks!r} + [
    dict(type='TestKillBeforeIterHook', iteration={iteration})]
''')


def check_same_run(lib: str, cfg: str, root, final: str,
                   kill_at: int) -> None:
    """xcit_mm's tools/train.py runs ``cfg`` without interruption; the
    library's own tools/train.py runs it killed just before ``kill_at`` and
    then resumed with its ``--resume``: both end with the same weights.
    (The library's run is the same run, and its resume is exact.)"""
    ours = train('tools/train.py', cfg, str(root / 'ours'))
    assert ours.returncode == 0, explain(ours)
    work = str(root / 'theirs')
    killed = train(library_train_py(lib), with_kill(cfg, kill_at), work)
    assert killed.returncode == -signal.SIGKILL, explain(killed)
    assert not osp.isfile(osp.join(work, final))
    resumed = train(library_train_py(lib), cfg, work, '--resume')
    assert resumed.returncode == 0, explain(resumed)
    assert 'Resuming from' in resumed.stdout + resumed.stderr, \
        explain(resumed)
    assert_same_weights(final_weights(str(root / 'ours'), final),
                        final_weights(work, final))


def test_digits_demo_under_mmpretrain_train_py(tmp_path):
    data = make_split_folders(str(tmp_path / 'data'), num_classes=2,
                              per_class=6)
    # 2 epochs of 3 iterations, an iteration checkpoint every 2
    cfg = write_config(str(tmp_path / 'demo.py'), f'''
_base_ = [{osp.join(REPO, 'configs/xcit/xcit-digits_demo.py')!r}]
train_dataloader = dict(batch_size=4, dataset=dict(data_root={data!r}))
val_dataloader = dict(batch_size=4, dataset=dict(data_root={data!r}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=2, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=2))
custom_hooks = [dict(type='xcit_mm.AtomicCheckpointHook', by_epoch=False,
                     interval=2, max_keep_ckpts=1)]
''')
    check_same_run('mmpretrain', cfg, tmp_path, 'epoch_2.pth', kill_at=5)


@pytest.mark.parametrize('lib, config, final', [
    ('mmdet', 'configs/mask_rcnn/mask-rcnn_xcit-s12-p16_fpn_1x_coco.py',
     'epoch_1.pth'),
    ('mmseg', 'configs/upernet/'
     'upernet_xcit-s12-p16_8xb2-160k_ade20k-512x512.py', 'iter_4.pth'),
])
def test_dense_config_under_library_train_py(lib, config, final, tmp_path):
    data = (make_coco(str(tmp_path / 'coco'), num_images=8) + '/'
            if lib == 'mmdet' else
            make_ade(str(tmp_path / 'ade' / 'ADEChallengeData2016'),
                     num_images=8))
    cfg = tiny_dense_config(osp.join(REPO, config), data_root=data)
    if lib == 'mmseg':  # 4 iterations, a checkpoint every 2
        cfg.train_cfg.max_iters = 4
        cfg.train_cfg.val_interval = 4
        cfg.default_hooks.checkpoint.interval = 2
    else:  # 1 epoch of 4 iterations, an iteration checkpoint every 2
        cfg.custom_hooks = [dict(type='xcit_mm.AtomicCheckpointHook',
                                 by_epoch=False, interval=2)]
    cfg.randomness = dict(seed=0, deterministic=True)
    path = str(tmp_path / osp.basename(config))
    cfg.dump(path)
    check_same_run(lib, path, tmp_path, final, kill_at=3)
