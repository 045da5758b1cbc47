"""``--amp`` picks bf16 only where the rank's GPU computes it natively
(compute capability >= 8.0), without touching GPU 0 or another device.

The device queries are monkeypatched (no GPU here); the selection logic
and tools/train.py's option handling are the real ones."""
import pytest
import torch
from mmengine.config import Config

from xcit_mm.cli.amp import select_amp_dtype
from xcit_mm.cli.train_test import apply_amp


@pytest.fixture
def gpus(monkeypatch):
    """Two visible GPUs of the given capabilities; record what is asked."""
    asked = []

    def install(*capabilities):
        def capability(index=None):
            asked.append(index)
            return capabilities[index]

        def no_current_device_queries(*a, **k):
            raise AssertionError('queried the current device (GPU 0 in '
                                 'every rank before set_device)')

        monkeypatch.setattr(torch.version, 'hip', None)
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
        monkeypatch.setattr(torch.cuda, 'device_count',
                            lambda: len(capabilities))
        monkeypatch.setattr(torch.cuda, 'get_device_capability', capability)
        monkeypatch.setattr(torch.cuda, 'is_bf16_supported',
                            no_current_device_queries)
        monkeypatch.setattr(torch.cuda, 'current_device',
                            no_current_device_queries)
        return asked
    return install


@pytest.mark.parametrize('cap,dtype', [((7, 0), 'float16'),    # V100
                                       ((7, 5), 'float16'),    # T4
                                       ((8, 0), 'bfloat16'),   # A100
                                       ((9, 0), 'bfloat16')])  # H100
def test_select_amp_dtype(gpus, cap, dtype):
    asked = gpus((6, 0), cap)
    assert select_amp_dtype('cuda:1') == dtype
    assert asked == [1]


def test_select_amp_dtype_off_cuda():
    assert select_amp_dtype('cpu') == 'float16'


def test_train_amp_uses_the_local_rank_gpu(gpus, monkeypatch):
    asked = gpus((8, 0), (7, 0))  # a mixed node: rank 1 has a V100
    monkeypatch.setenv('LOCAL_RANK', '1')
    cfg = Config(dict(optim_wrapper=dict(
        optimizer=dict(type='SGD', lr=0.1)), work_dir='unused'))
    apply_amp(cfg)  # what tools/train.py --amp does
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'float16'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert asked == [1]
