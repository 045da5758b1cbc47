"""Launch helpers shared by tools/train.py and tools/test.py."""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config

from xcit_mm.utils.errors import ConfigError

#: Set to 1 to run distributed training / testing on the CPU (gloo) with a
#: CUDA build of torch.
CPU_ENV = 'XCIT_MM_CPU'


def cpu_requested() -> bool:
    """Whether multi-process runs may use the CPU: asked for with
    ``XCIT_MM_CPU=1``, or implied by a torch built without CUDA / ROCm
    (no GPU can be expected then)."""
    if os.environ.get(CPU_ENV, '') not in ('', '0'):
        return True
    return torch.version.cuda is None and torch.version.hip is None


def setup_cpu_distributed(cfg: Config) -> bool:
    """Make ``--launcher pytorch`` work on the CPU, when that is asked for.

    mmengine 0.10.7's pytorch launcher calls ``torch.cuda.set_device``
    unconditionally and its Runner wraps the model in DDP with
    ``device_ids=[LOCAL_RANK]``; both fail on the CPU. Without a usable
    GPU this starts the process group itself with the ``gloo`` backend
    (from torchrun's environment; mmengine then skips its own
    initialisation) and builds DDP with ``device_ids=None`` -- but only
    when CPU training is explicit (:func:`cpu_requested`): with a CUDA
    build of torch a missing GPU is a fault of the node (driver, cgroup,
    ``CUDA_VISIBLE_DEVICES``), and training on the CPU instead would be
    silent, slow and, with SyncBN configs, a crash later on; a
    :class:`ConfigError` says so at once. On a GPU machine it does nothing.

    Args:
        cfg (Config): The config; ``cfg.launcher`` must already be set.

    Returns:
        bool: Whether the CPU setup was applied.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if not cpu_requested():
        raise ConfigError(
            f'--launcher {launcher} found no usable GPU, although torch '
            f'{torch.__version__} was built for CUDA {torch.version.cuda} '
            f'(CUDA_VISIBLE_DEVICES={os.environ.get("CUDA_VISIBLE_DEVICES")!r}'
            '). Distributed training does not fall back to the CPU '
            'silently: check the node (nvidia-smi, the driver, the GPUs the '
            'job was given) and resubmit, or set XCIT_MM_CPU=1 to train on '
            'the CPU (gloo) on purpose; configs with SyncBN '
            "(sync_bn='torch', the dense ones) need GPUs.")
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
    env_cfg = dict(cfg.get('env_cfg') or {})
    env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {},
                               backend='gloo')
    cfg.env_cfg = env_cfg
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None  # CPU module: DDP takes no device ids
    cfg.model_wrapper_cfg = wrapper
    return True
