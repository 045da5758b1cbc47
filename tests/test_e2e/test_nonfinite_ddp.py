"""NonFiniteLossHook in 2-process training (gloo, CPU, tools/dist_train.sh):
the loss turns NaN on rank 1 only; the flag accumulated on each device is
all-reduced at the next check, so both ranks stop, naming the iteration,
and neither waits for the other forever. No checkpoint is written."""
import glob
import os.path as osp

from tests.faults import tiny_train_cfg
from tests.utils import (
    explain,
    free_port,
    make_image_folder,
    run_tool,
    write_config,
)


def test_nan_on_one_rank_stops_both(tmp_path):
    data = make_image_folder(str(tmp_path / 'data'), per_class=8)
    cfg = tiny_train_cfg(data, max_epochs=2, iter_ckpt_interval=100,
                         extra_hooks=[
                             dict(type='xcit_mm.NonFiniteLossHook',
                                  action='stop', interval=2),
                             dict(type='TestNaNInputOnRankHook',
                                  iteration=3, rank=1)])
    cfg['default_hooks']['checkpoint'] = dict(
        type='xcit_mm.AtomicCheckpointHook', interval=100)
    path = write_config(str(tmp_path / 'nan.py'), cfg)
    work = str(tmp_path / 'work')
    proc = run_tool(['bash', 'tools/dist_train.sh', path, '2', '--work-dir',
                     work], timeout=400, PORT=str(free_port()),
                    XCIT_MM_CPU='1')
    assert proc.returncode != 0
    log = ' '.join((proc.stdout + proc.stderr).split())  # unwrapped
    # each rank stopped with the one-paragraph error at the check of
    # iteration 4 (rank 0 never saw a NaN itself)
    assert log.count('train.py: error: Non-finite loss at iteration') == 2, \
        explain(proc)
    assert log.count('iteration 3/4: loss=nan') == 1  # rank 1's terms
    assert log.count('(found at iteration 4, checked every 2') == 2
    assert 'Epoch(train) [2][2/2]' not in log
    assert not glob.glob(osp.join(work, '*.pth'))
