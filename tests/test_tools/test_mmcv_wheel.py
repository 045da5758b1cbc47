"""tools/misc/mmcv_wheel.py: the wheel cache key of tools/install.sh and
its check of mmcv's compiled (CUDA) ops."""
import sys

import mmcv
import pytest
import torch

from tests.utils import load_tool

tool = load_tool('tools/misc/mmcv_wheel.py')


def test_cache_key_names_torch_cuda_and_python(monkeypatch):
    key = tool.cache_key()
    py = sys.implementation.cache_tag
    assert key.startswith(f"torch{torch.__version__.split('+')[0]}-")
    assert key.endswith(f'-{py}')
    monkeypatch.setattr(torch.version, 'cuda', '12.4')
    assert tool.cache_key().split('-')[1] == 'cu12.4'
    monkeypatch.setattr(torch.version, 'cuda', None)
    monkeypatch.setattr(torch.version, 'hip', None)
    assert tool.cache_key().split('-')[1] == 'cpu'


def test_check_passes_here_and_names_the_version():
    assert tool.check_ops(mmcv.__version__) == ''
    assert 'not 9.9.9' in tool.check_ops('9.9.9')
    assert tool.main(['check', '9.9.9']) == 1
    assert tool.main(['check', mmcv.__version__]) == 0


def test_check_runs_a_cuda_op_when_a_gpu_is_visible(monkeypatch):
    """A wheel without CUDA ops imports fine: the check runs nms on the
    GPU. Here the GPU is simulated and the op fails as mmcv's does."""
    monkeypatch.setattr(torch.version, 'cuda', '12.4')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    calls = []

    def nms(boxes, scores, iou):
        calls.append(boxes.device)
        raise RuntimeError('nms_impl: implementation for device cuda:0 '
                           'not found.')

    monkeypatch.setattr(torch, 'tensor', lambda data, device=None:
                        torch.as_tensor(data))
    monkeypatch.setattr(mmcv.ops, 'nms', nms)
    why = tool.check_ops(mmcv.__version__)
    assert 'built without CUDA ops' in why and 'not found' in why
    assert len(calls) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_check_on_a_gpu():
    assert tool.check_ops(mmcv.__version__) == ''
