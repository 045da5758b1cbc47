"""tools/dist_train.sh: 2 processes on the CPU (gloo) through torchrun."""
import os.path as osp

from tests.test_tools.test_train_test import TINY
from tests.utils import explain, free_port, make_split_folders, run_tool
from xcit_mm.runtime import safe_load


def test_dist_train_two_cpu_processes(tmp_path):
    root = make_split_folders(str(tmp_path / 'data'), per_class=8)
    work = str(tmp_path / 'work')
    proc = run_tool([
        'bash', 'tools/dist_train.sh', 'configs/xcit/xcit-digits_demo.py',
        '2', '--work-dir', work, '--cfg-options'
    ] + TINY + [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        'model.head.num_classes=2', 'data_preprocessor.num_classes=2',
        'train_dataloader.batch_size=4', 'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1'
    ], timeout=400, PORT=str(free_port()), XCIT_MM_CPU='1')
    assert proc.returncode == 0, explain(proc)
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    # 16 images / (2 processes x 4) = 2 iterations per epoch
    assert 'Epoch(train) [1][2/2]' in log
    assert 'Epoch(val) [1][' in log
    # the gradients come in the layout of their weights (DDP's buckets):
    # no copy, no warning (tests/test_models/test_layers/test_fast_xca.py)
    assert 'Grad strides do not match bucket view strides' not in log
    ckpt = safe_load(osp.join(work, 'epoch_1.pth'))
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    assert any(k.startswith('backbone.') for k in ckpt['state_dict'])
