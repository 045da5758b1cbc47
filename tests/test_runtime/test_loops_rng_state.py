"""RNG states follow the process's own GPU only: a state saved with 4
visible GPUs restores in a process that sees 1 (another
CUDA_VISIBLE_DEVICES), instead of failing in ``set_rng_state_all``.

The GPUs are simulated (device queries monkeypatched, CPU tensors as their
states). The resumable loops themselves store no RNG state: they seed
from the position in the run (tests/test_e2e/test_resume_exact.py)."""
import pytest
import torch

from xcit_mm.runtime.loops import get_rng_state, set_rng_state


@pytest.fixture
def gpus(monkeypatch):
    """Simulate ``n`` visible GPUs; record which device states are read
    and written."""
    log = []

    def install(n, current=0):
        def check(device):
            index = device if isinstance(device, int) else (
                torch.device(device).index or 0)
            if index >= n:
                raise RuntimeError(f'invalid device ordinal {index}')
            return index

        def get_state(device='cuda'):
            log.append(('get', check(device)))
            return torch.full((16, ), check(device), dtype=torch.uint8)

        def set_state(state, device='cuda'):
            log.append(('set', check(device), int(state[0])))

        monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
        monkeypatch.setattr(torch.cuda, 'is_initialized', lambda: True)
        monkeypatch.setattr(torch.cuda, 'device_count', lambda: n)
        monkeypatch.setattr(torch.cuda, 'current_device', lambda: current)
        monkeypatch.setattr(torch.cuda, 'get_rng_state', get_state)
        monkeypatch.setattr(torch.cuda, 'set_rng_state', set_state)
        monkeypatch.setattr(torch.cuda, 'get_rng_state_all', lambda: [
            get_state(i) for i in range(n)])
        monkeypatch.setattr(torch.cuda, 'set_rng_state_all', lambda states: [
            set_state(s, i) for i, s in enumerate(states)])
        return log
    return install


def test_saves_the_current_gpu_only(gpus):
    log = gpus(4, current=2)
    state = get_rng_state()
    assert torch.is_tensor(state['cuda']) and int(state['cuda'][0]) == 2
    assert log == [('get', 2)]


def test_restores_with_fewer_visible_gpus(gpus):
    log = gpus(4, current=2)
    state = get_rng_state()
    log = gpus(1, current=0)  # resumed with CUDA_VISIBLE_DEVICES=0
    log.clear()
    set_rng_state(state)
    assert log == [('set', 0, 2)]


def test_restores_a_state_of_every_gpu(gpus):
    """Checkpoints written before held a list with one state per GPU."""
    gpus(1)
    state = dict(get_rng_state(), cuda=[torch.full((16, ), i,
                                                   dtype=torch.uint8)
                                        for i in range(4)])
    log = gpus(1)
    log.clear()
    set_rng_state(state)
    assert log == [('set', 0, 0)]
