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
    if launcher == 'none':
        return False
    if torch.cuda.is_available():
        init_restarted_process_group(cfg, 'nccl')
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
    if not init_restarted_process_group(cfg, 'gloo') and \
            not dist.is_initialized():
        dist.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']), **_timeout(cfg))
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


def _timeout(cfg: Config) -> dict:
    timeout = (cfg.get('env_cfg') or {}).get('dist_cfg', {}).get('timeout')
    if timeout is None:
        return {}
    import datetime
    return dict(timeout=datetime.timedelta(seconds=timeout))


def init_restarted_process_group(cfg: Config, default_backend: str) -> bool:
    """Start the process group of a process that torchrun restarted.

    After a failure (``--max-restarts``) torchrun starts new processes that
    meet in its store again, where the previous attempt's keys are still
    written: gloo then connects to the addresses of processes that no
    longer exist ("connectFullMesh failed ... Connection refused"). This
    joins the store under a prefix of its own per attempt
    (``TORCHELASTIC_RESTART_COUNT``); on a GPU it also selects the rank's
    device, as mmengine's launcher would (which then skips its own
    initialisation). Does nothing in a first attempt.

    Returns:
        bool: Whether the process group was started here.
    """
    restart = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', 0) or 0)
    if restart == 0 or dist.is_initialized() or \
            cfg.get('launcher', 'none') != 'pytorch':
        return False
    backend = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get(
        'backend', default_backend)
    if default_backend == 'gloo':
        backend = 'gloo'
    if backend != 'gloo':
        torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
    kwargs = _timeout(cfg)
    world_size = int(os.environ['WORLD_SIZE'])
    rank = int(os.environ['RANK'])
    # the agent serves the store (static rendezvous), else rank 0 does
    agent = os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True'
    store = dist.TCPStore(
        os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']),
        world_size, is_master=not agent and rank == 0, **kwargs)
    dist.init_process_group(
        backend=backend, store=dist.PrefixStore(
            f'xcit_mm/attempt_{restart}', store),
        rank=rank, world_size=world_size, **kwargs)
    return True
