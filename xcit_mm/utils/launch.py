"""Launch helpers shared by tools/train.py and tools/test.py."""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config) -> bool:
    """Make ``--launcher pytorch`` work on machines without a GPU.

    mmengine 0.10.7's pytorch launcher calls ``torch.cuda.set_device``
    unconditionally and its Runner wraps the model in DDP with
    ``device_ids=[LOCAL_RANK]``; both fail on the CPU. When no GPU is
    available this starts the process group itself with the ``gloo``
    backend (from torchrun's environment; mmengine then skips its own
    initialisation) and builds DDP with ``device_ids=None``. On a GPU
    machine it does nothing.

    Args:
        cfg (Config): The config; ``cfg.launcher`` must already be set.

    Returns:
        bool: Whether the CPU setup was applied.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} without a GPU is not supported; use '
            'tools/dist_train.sh (torchrun, --launcher pytorch) for '
            'multi-process CPU runs.')
    if not dist.is_initialized():
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout')
        kwargs = {}
        if timeout is not None:
            import datetime
            kwargs['timeout'] = datetime.timedelta(seconds=timeout)
        dist.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']), **kwargs)
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None  # CPU module: DDP takes no device ids
    cfg.model_wrapper_cfg = wrapper
    return True
