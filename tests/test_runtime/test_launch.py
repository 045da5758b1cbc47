"""Distributed runs do not fall back to the CPU silently: with a CUDA build
of torch and no usable GPU (a driver fault on a GPU node), ``--launcher
pytorch`` stops with one paragraph unless ``XCIT_MM_CPU=1`` asks for the
CPU. (tests/test_tools/test_dist_train.py runs the CPU path end to end.)"""
import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from tests.utils import free_port
from xcit_mm.runtime.launch import setup_cpu_distributed
from xcit_mm.utils.errors import ConfigError


@pytest.fixture
def gpu_node_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.version, 'cuda', '12.4')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.delenv('XCIT_MM_CPU', raising=False)
    for k, v in dict(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0',
                     MASTER_ADDR='127.0.0.1',
                     MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(k, v)


def test_no_silent_cpu_fallback(gpu_node_without_gpu):
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict())))
    try:
        with pytest.raises(ConfigError) as info:
            setup_cpu_distributed(cfg)
    finally:
        if dist.is_initialized():  # the silent fallback started gloo
            dist.destroy_process_group()
    msg = str(info.value)
    assert 'found no usable GPU' in msg and 'CUDA 12.4' in msg
    assert 'XCIT_MM_CPU=1' in msg and 'nvidia-smi' in msg
    assert not dist.is_initialized()
    assert 'model_wrapper_cfg' not in cfg


def test_cpu_on_request(gpu_node_without_gpu, monkeypatch):
    monkeypatch.setenv('XCIT_MM_CPU', '1')
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict())))
    try:
        assert setup_cpu_distributed(cfg) is True
        assert dist.get_backend() == 'gloo'
        assert cfg.model_wrapper_cfg.device_ids is None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_config_without_env_cfg(gpu_node_without_gpu, monkeypatch):
    monkeypatch.setenv('XCIT_MM_CPU', '1')
    cfg = Config(dict(launcher='pytorch'))
    try:
        assert setup_cpu_distributed(cfg) is True
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_cpu_only_torch_needs_no_request(gpu_node_without_gpu, monkeypatch):
    monkeypatch.setattr(torch.version, 'cuda', None)
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict())))
    try:
        assert setup_cpu_distributed(cfg) is True
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
