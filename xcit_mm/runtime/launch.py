"""Starting the process group where mmengine's launcher cannot: on the CPU
(gloo) and after a torchrun restart. :class:`xcit_mm.Runner` calls
:func:`launch` from its ``setup_env``; tools that build no Runner
(``knn_eval.py``) call :func:`setup_cpu_distributed`.
:func:`check_launcher_env` refuses a ``--launcher`` run started by hand."""
import os
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config

from xcit_mm.utils.errors import ConfigError

#: Set to 1 to run distributed training / testing on the CPU (gloo) with a
#: CUDA build of torch.
CPU_ENV = 'XCIT_MM_CPU'


#: What each ``--launcher`` starts its processes with: the environment
#: variables it sets and how a user starts it.
LAUNCHER_ENV = {
    'pytorch': (('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                'torchrun: `bash tools/dist_train.sh CONFIG NUM_PROCS` '
                '(`tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS` for '
                'tools/test.py), or `torchrun --nproc-per-node NUM_PROCS '
                'tools/... ARGS --launcher pytorch`'),
    'slurm': (('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
              'srun: `bash tools/slurm_train.sh PARTITION JOB CONFIG '
              'WORK_DIR` (tools/slurm_test.sh for tools/test.py)'),
    'mpi': (('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE',
             'OMPI_COMM_WORLD_LOCAL_RANK'),
            'Open MPI\'s `mpirun -np NUM_PROCS python tools/... ARGS '
            '--launcher mpi`'),
}


def check_launcher_env(launcher: str) -> None:
    """Refuse a ``--launcher`` run that its launcher did not start.

    ``--launcher pytorch`` (slurm, mpi) only says how the processes were
    started; the process group is built from the environment torchrun
    (srun, mpirun) gives each process. Started by hand, mmengine's launcher
    ends in a bare ``KeyError: 'RANK'``; this names the way to start it.

    Raises:
        ConfigError: a variable of :data:`LAUNCHER_ENV` is not set.
    """
    if launcher not in LAUNCHER_ENV:
        return
    names, how = LAUNCHER_ENV[launcher]
    missing = [n for n in names if n not in os.environ]
    if missing:
        raise ConfigError(
            f'--launcher {launcher} runs one process of a multi-process job '
            f'and must be started by its launcher, which sets '
            f'{", ".join(missing)} for every process; they are not set '
            f'here. Start the job with {how}. For a single process, leave '
            'out --launcher.')


def cpu_requested() -> bool:
    """Whether multi-process runs may use the CPU: asked for with
    ``XCIT_MM_CPU=1``, or implied by a torch built without CUDA / ROCm
    (no GPU can be expected then)."""
    if os.environ.get(CPU_ENV, '') not in ('', '0'):
        return True
    return torch.version.cuda is None and torch.version.hip is None


def launch(launcher: str, env_cfg: dict) -> dict:
    """Start the process group of a ``launcher`` run where mmengine's own
    launcher would fail, and return the ``env_cfg`` to use.

    mmengine 0.10.7's pytorch launcher calls ``torch.cuda.set_device``
    unconditionally and its Runner wraps the model in DDP with
    ``device_ids=[LOCAL_RANK]``; both fail on the CPU. Without a usable
    GPU this starts the process group itself with the ``gloo`` backend
    (from torchrun's environment; mmengine then skips its own
    initialisation) and the returned ``env_cfg`` says gloo -- but only
    when CPU training is explicit (:func:`cpu_requested`): with a CUDA
    build of torch a missing GPU is a fault of the node (driver, cgroup,
    ``CUDA_VISIBLE_DEVICES``), and training on the CPU instead would be
    silent, slow and, with SyncBN configs, a crash later on; a
    :class:`ConfigError` says so at once. On a GPU it only handles a
    torchrun restart (:func:`init_restarted_process_group`).
    """
    env_cfg = dict(env_cfg or {})
    if launcher == 'none':
        return env_cfg
    check_launcher_env(launcher)
    if torch.cuda.is_available():
        init_restarted_process_group(launcher, env_cfg, 'nccl')
        return env_cfg
    if not cpu_requested():
        raise ConfigError(
            f'The launcher {launcher!r} found no usable GPU, although torch '
            f'{torch.__version__} was built for CUDA {torch.version.cuda} '
            f'(CUDA_VISIBLE_DEVICES={os.environ.get("CUDA_VISIBLE_DEVICES")!r}'
            '). Distributed training does not fall back to the CPU '
            'silently: check the node (nvidia-smi, the driver, the GPUs the '
            'job was given) and resubmit, or set XCIT_MM_CPU=1 to train on '
            'the CPU (gloo) on purpose; configs with SyncBN '
            "(sync_bn='torch', the dense ones) need GPUs.")
    if launcher != 'pytorch':
        raise ConfigError(
            f'The launcher {launcher!r} without a GPU is not supported; '
            "multi-process CPU runs use launcher='pytorch' under torchrun.")
    if not init_restarted_process_group(launcher, env_cfg, 'gloo') and \
            not dist.is_initialized():
        dist.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']), **_timeout(env_cfg))
    env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {},
                               backend='gloo')
    return env_cfg


def cpu_ddp_wrapper(model_wrapper_cfg: Optional[dict],
                    find_unused_parameters: bool = False) -> dict:
    """The model wrapper config of a CPU process group: mmengine's default
    DDP wrapper (or the given one) with ``device_ids=None``."""
    wrapper = dict(model_wrapper_cfg or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=find_unused_parameters))
    wrapper['device_ids'] = None  # CPU module: DDP takes no device ids
    return wrapper


def setup_cpu_distributed(cfg: Config) -> bool:
    """:func:`launch` for a program that builds no Runner: updates
    ``cfg.env_cfg`` and, on the CPU, ``cfg.model_wrapper_cfg``; returns
    whether the CPU process group is used."""
    launcher = cfg.get('launcher', 'none')
    cfg.env_cfg = launch(launcher, cfg.get('env_cfg') or {})
    if launcher == 'none' or torch.cuda.is_available():
        return False
    cfg.model_wrapper_cfg = cpu_ddp_wrapper(
        cfg.get('model_wrapper_cfg'), cfg.get('find_unused_parameters',
                                              False))
    return True


def _timeout(env_cfg: dict) -> dict:
    timeout = ((env_cfg or {}).get('dist_cfg') or {}).get('timeout')
    if timeout is None:
        return {}
    import datetime
    return dict(timeout=datetime.timedelta(seconds=timeout))


def init_restarted_process_group(launcher: str, env_cfg: dict,
                                 default_backend: str) -> bool:
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
    if restart == 0 or dist.is_initialized() or launcher != 'pytorch':
        return False
    backend = ((env_cfg or {}).get('dist_cfg') or {}).get(
        'backend', default_backend)
    if default_backend == 'gloo':
        backend = 'gloo'
    if backend != 'gloo':
        torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
    kwargs = _timeout(env_cfg)
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
