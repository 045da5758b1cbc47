"""Training loops that resume exactly where a checkpoint was written, in
the middle of an epoch or of an iteration-based run, without replaying
data.

What mmengine 0.10.7 does on resume (``Runner.resume``): it restores the
weights, optimizer, schedulers and message hub, sets the loop's ``_epoch``
and ``_iter`` from the checkpoint's ``meta`` and re-seeds the RNGs from the
*initial* seed. :class:`~mmengine.runner.EpochBasedTrainLoop` then runs the
whole epoch ``_epoch`` from its first batch (the batches already consumed
are trained on a second time), and
:class:`~mmengine.runner.IterBasedTrainLoop` calls ``next()`` on the data
loader once per past iteration (loading, decoding and augmenting every
image of the run so far: hours at 80k iterations). Either way the RNG
streams (dropout, drop path, random augmentation) restart from the seed,
so the run differs from one that was never interrupted.

:class:`ResumableEpochBasedTrainLoop` and :class:`ResumableIterBasedTrainLoop`
make the randomness a function of the position in the run, so there is no
RNG state to carry and a resumed run draws what an uninterrupted one draws,
on every rank and whatever the number of visible GPUs:

- **position**: the batches already trained on (of the current epoch, or
  of the current pass of an iteration-based run) are skipped at the batch
  sampler, which yields index lists only, so no image is loaded for them.
  The sampler draws the same order as before (mmengine's samplers seed
  their shuffle with ``seed + epoch``; ``InfiniteSampler`` continues its
  stream);
- **model randomness** (drop path, dropout): before each iteration the
  Python, numpy and torch RNGs (CPU and the current GPU) are seeded from
  ``(seed, iteration)`` (and the rank with ``randomness.diff_rank_seed``);
- **augmentation randomness**: each sample is loaded with the RNGs seeded
  from ``(seed, epoch, batch position, rank, place in batch)``
  (:class:`SeededDataset`), in the main process (whose RNG state is put
  back afterwards) or in a data-loader worker alike. Random crops and flips
  therefore do not depend on ``num_workers``, on which worker loads a
  sample, nor on whether the run was resumed.

With ``randomness=dict(seed=S, deterministic=True)`` on the CPU, a run that
is killed anywhere (also a 2-process run) and resumed from its last
checkpoint ends with weights bit-identical to a run that was never stopped
(``tests/test_e2e/test_crash_resume.py``,
``tests/test_e2e/test_resume_exact.py``). Seeding costs a few
microseconds per iteration and per sample, and no synchronisation.
"""
import itertools
import logging
import random
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.runner import BaseLoop, EpochBasedTrainLoop, IterBasedTrainLoop
from torch.utils.data import DataLoader

from xcit_mm.registry import LOOPS
from xcit_mm.runtime.mmengine_private import (
    dynamic_intervals as _dynamic_intervals,
)
from xcit_mm.runtime.mmengine_private import (
    infinite_iterator,
    set_dataloader_attr,
    train_loop_built,
)
from xcit_mm.utils.errors import ConfigError


def get_rng_state() -> Dict[str, Any]:
    """The Python, numpy, torch and (when initialised) the *current* CUDA
    device's RNG states; restoring them does not depend on how many GPUs
    are visible."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state(torch.cuda.current_device())
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned (the CUDA state on the
    current device)."""
    random.setstate(_to_tuple(state['python']))
    np.random.set_state(_to_tuple(state['numpy']))
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda')
    if isinstance(cuda, (list, tuple)):  # all devices (older format)
        cuda = cuda[0] if cuda else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda.cpu(), torch.cuda.current_device())


def _to_tuple(x: Any) -> Any:
    """Lists back to tuples (as ``random.setstate`` needs them)."""
    if isinstance(x, (list, tuple)):
        return tuple(_to_tuple(v) for v in x)
    return x


def derive_seed(*keys: int) -> int:
    """A 32-bit seed that mixes ``keys`` (numpy's SeedSequence hashing:
    nearby keys give unrelated streams)."""
    seq = np.random.SeedSequence([int(k) % 2**32 for k in keys])
    return int(seq.generate_state(1)[0])


def seed_all(seed: int, cuda: bool = True) -> None:
    """Seed Python's, numpy's and torch's CPU RNGs, and the current CUDA
    device's when ``cuda`` (only that one: no other GPU is touched)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    if cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed(seed)


@contextmanager
def seeded(seed: int):
    """Run a block with the CPU RNGs seeded from ``seed``, then put the
    previous states back (the caller's random streams do not move)."""
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    seed_all(seed, cuda=False)
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])


class SeededDataset:
    """Wraps a data set; an index ``(i, seed)`` loads sample ``i`` with the
    RNGs seeded from ``seed`` (a plain ``i`` loads it as usual).

    Attribute access goes to the wrapped data set (``metainfo``,
    ``pipeline`` ...).
    """

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, tuple):
            index, seed = index
            with seeded(seed):
                return self.dataset[index]
        return self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == 'dataset':  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


class SkippableBatchSampler:
    """Wraps a loader's batch sampler; skips the first ``skip`` batches of
    each pass without loading them (set ``skip`` before ``iter(loader)`` and
    reset it after) and, with a ``seed``, gives each index the seed of its
    sample: ``(seed, epoch, batch position, rank, place in batch)``.

    Attribute access goes to the wrapped sampler, so hooks that reach
    ``dataloader.batch_sampler.sampler`` (``DistSamplerSeedHook``) still
    work.

    Args:
        batch_sampler: The batch sampler (``BatchSampler``,
            ``AspectRatioBatchSampler`` ...).
        seed (int, optional): Base seed of the samples; None yields plain
            indices.
    """

    def __init__(self, batch_sampler: Any, seed: Optional[int] = None):
        self.batch_sampler = batch_sampler
        self.skip = 0
        self.seed = seed
        self.rank = get_rank()

    def __iter__(self) -> Iterator[List[Any]]:
        # ``skip`` stays set until the loop resets it: torch calls iter()
        # twice when it creates a multi-worker iterator
        batches = itertools.islice(iter(self.batch_sampler), self.skip, None)
        if self.seed is None:
            return batches
        epoch = getattr(getattr(self.batch_sampler, 'sampler', None),
                        'epoch', 0)
        return self._seeded(batches, epoch, self.skip)

    def _seeded(self, batches, epoch: int, start: int):
        for pos, batch in enumerate(batches, start=start):
            yield [(i, derive_seed(self.seed, epoch, pos, self.rank, j))
                   for j, i in enumerate(batch)]

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __getattr__(self, name: str) -> Any:
        if name == 'batch_sampler':  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.batch_sampler, name)


def install_skippable_batch_sampler(
        dataloader: Any,
        seed: Optional[int] = None) -> Optional[SkippableBatchSampler]:
    """Put a :class:`SkippableBatchSampler` (and, with a ``seed``, a
    :class:`SeededDataset`) into a fresh ``DataLoader``.

    torch forbids assigning ``batch_sampler`` and ``dataset`` after
    construction, as a guard against changing them while an iterator uses
    them; no iterator exists yet here (persistent workers keep the sampler
    and data set of their first iterator, so both must be in place from the
    start). Returns None when the loader cannot take one (no batch sampler,
    or already iterated); the loop then skips by reading batches.
    """
    if not isinstance(dataloader, DataLoader):
        return None
    bs = dataloader.batch_sampler
    if isinstance(bs, SkippableBatchSampler):
        return bs
    if bs is None or getattr(dataloader, '_iterator', None) is not None:
        return None
    wrapper = SkippableBatchSampler(bs, seed)
    set_dataloader_attr(dataloader, 'batch_sampler', wrapper)
    if seed is not None:
        set_dataloader_attr(dataloader, 'dataset',
                            SeededDataset(dataloader.dataset))
    return wrapper


def _build_dataloader(runner, dataloader: Union[DataLoader, Dict]):
    """What ``BaseLoop.__init__`` builds from a dict (so the wrappers go in
    before any iterator exists)."""
    if not isinstance(dataloader, dict):
        return dataloader
    diff_rank_seed = _diff_rank_seed(runner)
    return runner.build_dataloader(dataloader, seed=runner.seed,
                                   diff_rank_seed=diff_rank_seed)


def _diff_rank_seed(runner) -> bool:
    return bool((runner.cfg.get('randomness') or {}).get('diff_rank_seed',
                                                         False))


class _PositionSeeding:
    """Seeds the RNGs before each iteration from ``(seed, iteration)``."""

    def _setup_seeding(self, seed_samples: bool) -> None:
        seed = self.runner.seed
        self._seed = None if seed is None else int(seed)
        diff = _diff_rank_seed(self.runner)
        self._rank_key = get_rank() if diff else 0
        self._skipper = install_skippable_batch_sampler(
            self.dataloader, self._seed if seed_samples else None)

    def sync_seed(self) -> None:
        """Take ``runner.seed`` again, after ``Runner.resume`` has put the
        checkpoint's seed back.

        The loop is built before the checkpoint is read, so with
        ``randomness.seed=None`` it saw the new run's random seed: the
        iteration seeds, the sample seeds and the sampler's shuffle (which
        the data loader took from the runner) follow the checkpoint's
        seed from here on. A sampler seed set in the config is kept.
        """
        seed = self.runner.seed
        if seed is None or int(seed) == self._seed:
            return
        old, self._seed = self._seed, int(seed)
        if self._skipper is not None and self._skipper.seed is not None:
            self._skipper.seed = self._seed
        sampler = getattr(self.dataloader.batch_sampler, 'sampler', None)
        if sampler is not None and getattr(sampler, 'seed', None) == old:
            sampler.seed = self._seed

    def _seed_iteration(self) -> None:
        if self._seed is not None:
            seed_all(derive_seed(self._seed, self._iter, self._rank_key,
                                 0x5EED))


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(_PositionSeeding, EpochBasedTrainLoop):
    """:class:`~mmengine.runner.EpochBasedTrainLoop` that resumes exactly
    where a checkpoint was written, also in the middle of an epoch.

    A drop-in replacement: ``train_cfg = dict(type=
    'xcit_mm.ResumableEpochBasedTrainLoop', max_epochs=N, val_interval=1)``
    (xcit_mm's epoch-based schedules name it). Pair it
    with an iteration checkpoint for crash recovery, e.g.
    ``custom_hooks = [dict(type='xcit_mm.AtomicCheckpointHook',
    by_epoch=False, interval=1000, max_keep_ckpts=1)]``. See the module
    docstring for what is restored.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The training data loader.
        max_epochs (int): Total epochs.
        val_begin (int): First epoch that validates. Defaults to 1.
        val_interval (int): Validation interval. Defaults to 1.
        dynamic_intervals (list[tuple[int, int]], optional): (milestone,
            interval) pairs. Defaults to None.
        seed_samples (bool): Load each sample with the RNGs seeded from its
            position (exact augmentation on resume, with any number of
            workers). Defaults to True.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 max_epochs: int,
                 val_begin: int = 1,
                 val_interval: int = 1,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None,
                 seed_samples: bool = True) -> None:
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval, dynamic_intervals)
        self._setup_seeding(seed_samples)

    def _batches_done_in_epoch(self) -> int:
        """Batches of the current epoch that a resumed checkpoint has
        already trained on (0 at a normal epoch start)."""
        done = self._iter - self._epoch * len(self.dataloader)
        if 0 <= done <= len(self.dataloader):
            return done
        print_log(
            f'The checkpoint is at iteration {self._iter} of epoch '
            f'{self._epoch + 1}, which does not fit {len(self.dataloader)} '
            'batches per epoch (was the data set or batch size changed?): '
            'the epoch restarts from its first batch.',
            logger='current', level=logging.WARNING)
        return 0

    def run_epoch(self) -> None:
        """Iterate one epoch, from where the checkpoint left it."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done = self._batches_done_in_epoch()
        if done and self._skipper is not None:
            self._skipper.skip = done
        iterator = iter(self.dataloader)
        if self._skipper is not None:
            self._skipper.skip = 0
        if done and self._skipper is None:  # loader without batch sampler
            for _ in range(done):
                next(iterator)
        if done:
            print_log(
                f'Resumed in the middle of epoch {self._epoch + 1}: skipped '
                f'its first {done} batches (already trained on).',
                logger='current')
        for idx, data_batch in enumerate(iterator, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run_iter(self, idx: int, data_batch: Any) -> None:
        """One batch, with the RNGs seeded from the iteration."""
        self._seed_iteration()
        super().run_iter(idx, data_batch)


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(_PositionSeeding, IterBasedTrainLoop):
    """:class:`~mmengine.runner.IterBasedTrainLoop` that resumes at
    iteration N without reading N batches, and exactly.

    mmengine's loop calls ``next()`` on the data loader once per iteration
    already done; this one positions the batch sampler instead (pass
    ``N // len(loader)``, batch ``N % len(loader)``; with
    ``InfiniteSampler``, batch N of its stream): index lists are drawn,
    no image is read. Randomness follows the position (module docstring).
    The segmentation configs use it: ``train_cfg = dict(type=
    'xcit_mm.ResumableIterBasedTrainLoop', max_iters=80000,
    val_interval=8000)``.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The training data loader.
        max_iters (int): Total iterations.
        val_begin (int): First iteration that validates. Defaults to 1.
        val_interval (int): Validation interval. Defaults to 1000.
        dynamic_intervals (list[tuple[int, int]], optional): (milestone,
            interval) pairs. Defaults to None.
        seed_samples (bool): As in :class:`ResumableEpochBasedTrainLoop`.
            Defaults to True.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 max_iters: int,
                 val_begin: int = 1,
                 val_interval: int = 1000,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None,
                 seed_samples: bool = True) -> None:
        dynamic = dynamic_intervals
        # IterBasedTrainLoop.__init__ minus its iterator, which run()
        # creates at the resumed position (an iterator made now would load
        # batches from the start and fix the sampler of persistent workers)
        BaseLoop.__init__(self, runner, _build_dataloader(runner, dataloader))
        self._max_iters = int(max_iters)
        assert self._max_iters == max_iters, \
            f'`max_iters` should be an integer, got {max_iters}'
        self._max_epochs = 1
        self._epoch = 0
        self._iter = 0
        self.val_begin = val_begin
        self.val_interval = val_interval
        self.stop_training = False
        if hasattr(self.dataloader.dataset, 'metainfo'):
            self.runner.visualizer.dataset_meta = \
                self.dataloader.dataset.metainfo
        self.dataloader_iterator = None
        self.dynamic_milestones, self.dynamic_intervals = \
            _dynamic_intervals(self.val_interval, dynamic)
        self._setup_seeding(seed_samples)

    def _sampler(self) -> Any:
        sampler = getattr(self.dataloader.batch_sampler, 'sampler', None)
        return sampler if sampler is not None else getattr(
            self.dataloader, 'sampler', None)

    def _start_iterator(self) -> None:
        """The data iterator, at the position of iteration ``_iter``."""
        sampler = self._sampler()
        if isinstance(sampler, InfiniteSampler) or self._iter == 0:
            passes, done = 0, self._iter  # one endless pass
        else:
            passes, done = divmod(self._iter, len(self.dataloader))
        if passes and hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(passes)
        if self._skipper is not None:
            self._skipper.skip = done
        self.dataloader_iterator = infinite_iterator(self.dataloader, passes)
        if self._skipper is not None:
            self._skipper.skip = 0
        elif done:  # no batch sampler to position: read the batches
            for _ in range(done):
                next(self.dataloader_iterator)
        if self._iter:
            print_log(
                f'Resumed at iteration {self._iter}: pass {passes + 1} of '
                f'the data, skipped its first {done} batches without '
                'loading them.', logger='current')

    def run(self) -> torch.nn.Module:
        """Train from iteration ``_iter`` to ``max_iters``."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        self._start_iterator()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_iter(self, data_batch: Sequence[dict]) -> None:
        """One batch, with the RNGs seeded from the iteration."""
        self._seed_iteration()
        super().run_iter(data_batch)


def train_loader_layout(runner) -> Optional[Dict[str, int]]:
    """How the training data is cut into iterations: ``world_size``,
    ``batch_size`` (per process), ``iters_per_epoch`` and
    ``samples_per_epoch`` (the data set's length). :class:`xcit_mm.Runner`
    writes it into every checkpoint's ``meta['train_loader']``; None
    without a training data loader."""
    loop = runner.train_loop if train_loop_built(runner) else None
    loader = getattr(loop, 'dataloader', None)
    if loader is None:
        return None
    batch_size = getattr(loader.batch_sampler, 'batch_size', None) \
        or getattr(loader, 'batch_size', None)
    return dict(world_size=int(runner.world_size),
                batch_size=int(batch_size or 0),
                iters_per_epoch=len(loader),
                samples_per_epoch=len(loader.dataset))


def contiguous_batches(loader: Any) -> bool:
    """Whether ``loader``'s batch sampler is torch's ``BatchSampler``,
    which cuts its sampler's order into consecutive batches (mmdet's
    ``AspectRatioBatchSampler`` groups them instead)."""
    from torch.utils.data import BatchSampler
    bs = getattr(loader, 'batch_sampler', None)
    bs = bs.batch_sampler if isinstance(bs, SkippableBatchSampler) else bs
    return type(bs) is BatchSampler


def check_resume_layout(saved: Optional[dict], now: Optional[dict],
                        filename: str, iteration: int = 0,
                        contiguous: bool = True) -> Optional[str]:
    """Whether a checkpoint written with the data layout ``saved`` can be
    resumed with the layout ``now`` (see :func:`train_loader_layout`).

    An iteration counts global batches of ``world_size * batch_size``
    samples: the loop's position, the parameter schedulers and DINO's
    teacher momentum are all in that unit. With the same global batch the
    run continues exactly by samples, whatever the number of processes
    (the samplers cut one global order of samples into consecutive global
    batches): returns a line to log when the number of processes changed.
    With another global batch no continuation is the same training, so
    this raises a :class:`ConfigError` that says what to do. A checkpoint
    without the layout (written before it was recorded), or of a data set
    of another length, is not checked here.

    Args:
        saved (dict | None): The checkpoint's ``meta['train_loader']``.
        now (dict | None): This run's layout.
        filename (str): The checkpoint, for the message.
        iteration (int): The checkpoint's iteration.
        contiguous (bool): Whether this run's batch sampler cuts the
            sampler's order into consecutive batches (torch's
            ``BatchSampler``). Grouping samplers (mmdet's
            ``AspectRatioBatchSampler``) batch each process's samples
            apart, so the rest of an epoch depends on the number of
            processes: with another number they resume at an epoch
            boundary only.
    """
    if not saved or not now or \
            saved['samples_per_epoch'] != now['samples_per_epoch']:
        return None  # another data set: the loop warns and starts the epoch
    old = saved['world_size'] * saved['batch_size']
    new = now['world_size'] * now['batch_size']
    if old == new and saved['iters_per_epoch'] == now['iters_per_epoch']:
        if saved['world_size'] == now['world_size']:
            return None
        if not contiguous and iteration % now['iters_per_epoch']:
            raise ConfigError(
                f'Cannot resume from {filename} with {now["world_size"]} '
                f'processes: it was written by {saved["world_size"]} in the '
                'middle of an epoch, and this batch sampler groups each '
                "process's samples (by aspect ratio), so the rest of the "
                'epoch would repeat or skip samples with another number of '
                f'processes. Resume with {saved["world_size"]} processes, or '
                'from the checkpoint of the last completed epoch (--resume '
                'PATH).', config_key='resume', config_value='PATH')
        return (f'Resuming a run of {saved["world_size"]} processes x '
                f'{saved["batch_size"]} images with {now["world_size"]} x '
                f'{now["batch_size"]}: the same global batch of {new}, so '
                'training continues with the same samples and schedules.')
    change = (f'it was written by {saved["world_size"]} processes x '
              f'{saved["batch_size"]} images per process (a global batch '
              f'of {old}, {saved["iters_per_epoch"]} iterations per epoch), '
              f'this run has {now["world_size"]} x {now["batch_size"]} = '
              f'{new} ({now["iters_per_epoch"]} iterations per epoch)')
    per_process, rest = divmod(old, now['world_size'])
    keep = (f'set train_dataloader.batch_size={per_process} for '
            f'{now["world_size"]} processes (--cfg-options '
            f'train_dataloader.batch_size={per_process}), or resume with '
            f'{saved["world_size"]} processes' if not rest else
            f'resume with {saved["world_size"]} processes of '
            f'{saved["batch_size"]} images (or any number that divides '
            f'{old}, with train_dataloader.batch_size = {old} / processes)')
    raise ConfigError(
        f'Cannot resume from {filename}: {change}. Iterations, the '
        'position in the epoch, the learning-rate schedule and DINO\'s '
        'teacher momentum are counted in global batches, so resuming '
        'would skip or repeat samples and put every schedule at the wrong '
        f'point. To continue this run, keep the global batch of {old}: '
        f'{keep}. To train on with the new batch size instead, start a new '
        'run from these weights (load_from with resume=False; the '
        'schedules start again).',
        config_key='train_dataloader.batch_size', config_value=str(
            per_process if not rest else saved['batch_size']))
