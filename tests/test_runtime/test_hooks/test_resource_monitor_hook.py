"""A short training with persistent data-loader workers does not leak
memory or file descriptors (tools/analysis_tools/check_leaks.py)."""
import os

import pytest

from tests.utils import load_tool
from xcit_mm.runtime.hooks.resource_monitor_hook import tree_usage

pytestmark = pytest.mark.skipif(not os.path.isdir('/proc/self/task'),
                                reason='reads /proc (Linux)')


def test_tree_usage_sees_children():
    import subprocess
    import sys
    child = subprocess.Popen([sys.executable, '-c',
                              'import time; time.sleep(30)'])
    try:
        usage = tree_usage(os.getpid())
        assert child.pid in usage['worker_pids']
        assert usage['main_rss_mb'] > 10 and usage['main_fds'] > 2
    finally:
        child.kill()
        child.wait()


def test_persistent_workers_do_not_leak():
    check_leaks = load_tool('tools/analysis_tools/check_leaks.py')
    # 6 epochs x 4 iterations, 2 persistent workers, sampled at each
    # epoch end; memory after epoch 1 may not grow by more than 64 MiB
    result = check_leaks.measure(epochs=6, num_workers=2)
    check_leaks.print_report(result)
    samples = result['samples']
    assert len(samples) == 6 and result['iters_per_epoch'] == 4
    assert all(s['workers'] == 2 for s in samples)
    assert result['worker_pids_stable']  # persistent: the same 2 processes
    assert result['fd_growth'] <= 2, result
    assert result['growth_mb'] <= result['allowed_mb'], result
    # and no steady climb: the last epochs are not all above the warm one
    warm = samples[1]['total_rss_mb']
    assert min(s['total_rss_mb'] for s in samples[2:]) < warm + 16, samples
    assert result['ok']
