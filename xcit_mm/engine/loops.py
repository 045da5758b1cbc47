"""An epoch-based training loop that resumes in the middle of an epoch.

What mmengine 0.10.7 does on resume (``Runner.resume``): it restores the
weights, optimizer, schedulers and message hub, sets the loop's ``_epoch``
and ``_iter`` from the checkpoint's ``meta``, re-seeds the RNGs from the
*initial* seed, and :class:`~mmengine.runner.EpochBasedTrainLoop` then runs
the whole epoch ``_epoch`` from its first batch. With a checkpoint written
in the middle of an epoch (``CheckpointHook(by_epoch=False)``) the batches
already consumed are trained on a second time, the epoch gets more than
``len(dataloader)`` iterations and the RNG streams (dropout, drop path,
random augmentation) restart from the seed: the run differs from one that
was never interrupted.

:class:`ResumableEpochBasedTrainLoop` fixes the three:

- **position**: after resuming at iteration ``i`` of epoch ``e``, the first
  ``i - e * len(dataloader)`` batches of that epoch are skipped at the batch
  sampler, which yields index lists only, so no image is loaded for them.
  The sampler draws the same order as before (mmengine's samplers seed their
  shuffle with ``seed + epoch``);
- **RNG state**: after each iteration (before the ``after_train_iter``
  hooks, where ``CheckpointHook`` saves) the Python, numpy, torch and CUDA
  RNG states are stored in the message hub, which every checkpoint carries;
  they are restored just before the first resumed batch is loaded;
- **epoch seeds**: at the start of each epoch the RNGs are seeded from
  ``(runner.seed, epoch)``, so what an epoch draws does not depend on what
  earlier epochs, validation or the loader's start drew.

With ``randomness=dict(seed=S, deterministic=True)`` on the CPU, a run that
is killed anywhere and resumed from its last checkpoint ends with weights
bit-identical to a run that was never stopped
(``tests/test_engine/test_crash_resume.py``). Limits: augmentation that runs
in data-loader *worker processes* uses the workers' own RNGs, which no
checkpoint captures (mmengine seeds them from ``seed + worker id``), so with
``num_workers > 0`` and random augmentation the resumed epoch sees other
random crops; and in multi-process training only rank 0's RNG state reaches
the checkpoint, so the RNG is restored only for single-process runs (the
data order is exact everywhere).
"""
import itertools
import logging
import random
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from xcit_mm.registry import LOOPS

#: Message-hub key of the RNG state after the last finished iteration.
RNG_STATE_KEY = 'xcit_mm_rng_state'


def get_rng_state() -> Dict[str, Any]:
    """The Python, numpy, torch (and initialised CUDA) RNG states."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    random.setstate(_to_tuple(state['python']))
    np.random.set_state(_to_tuple(state['numpy']))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


def _to_tuple(x: Any) -> Any:
    """Lists back to tuples (as ``random.setstate`` needs them)."""
    if isinstance(x, (list, tuple)):
        return tuple(_to_tuple(v) for v in x)
    return x


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's and torch's (all devices) global RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class SkippableBatchSampler:
    """Wraps a loader's batch sampler; skips the first ``skip`` batches of
    each pass without loading them (set ``skip`` before ``iter(loader)`` and
    reset it after).

    Attribute access goes to the wrapped sampler, so hooks that reach
    ``dataloader.batch_sampler.sampler`` (``DistSamplerSeedHook``) still
    work.

    Args:
        batch_sampler: The batch sampler (``BatchSampler``,
            ``AspectRatioBatchSampler`` ...).
    """

    def __init__(self, batch_sampler: Any):
        self.batch_sampler = batch_sampler
        self.skip = 0

    def __iter__(self) -> Iterator[List[int]]:
        # ``skip`` stays set until the loop resets it: torch calls iter()
        # twice when it creates a multi-worker iterator
        return itertools.islice(iter(self.batch_sampler), self.skip, None)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __getattr__(self, name: str) -> Any:
        if name == 'batch_sampler':  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.batch_sampler, name)


def install_skippable_batch_sampler(
        dataloader: Any) -> Optional[SkippableBatchSampler]:
    """Put a :class:`SkippableBatchSampler` into a fresh ``DataLoader``.

    torch forbids assigning ``batch_sampler`` after construction, as a guard
    against changing it while an iterator uses it; no iterator exists yet
    here (persistent workers keep the sampler of their first iterator, so it
    must be in place from the start). Returns None when the loader cannot
    take one (no batch sampler, or already iterated); the loop then skips
    by reading batches.
    """
    if not isinstance(dataloader, DataLoader):
        return None
    bs = dataloader.batch_sampler
    if isinstance(bs, SkippableBatchSampler):
        return bs
    if bs is None or getattr(dataloader, '_iterator', None) is not None:
        return None
    wrapper = SkippableBatchSampler(bs)
    object.__setattr__(dataloader, 'batch_sampler', wrapper)
    return wrapper


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """:class:`~mmengine.runner.EpochBasedTrainLoop` that resumes exactly
    where a checkpoint was written, also in the middle of an epoch.

    A drop-in replacement: ``train_cfg = dict(type=
    'xcit_mm.ResumableEpochBasedTrainLoop', max_epochs=N, val_interval=1)``
    (``tools/train.py`` uses it for every ``by_epoch=True`` config). Pair it
    with an iteration checkpoint for crash recovery, e.g.
    ``custom_hooks = [dict(type='xcit_mm.AtomicCheckpointHook',
    by_epoch=False, interval=1000, max_keep_ckpts=1)]``. See the module
    docstring for what is restored and the limits.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The training data loader.
        max_epochs (int): Total epochs.
        val_begin (int): First epoch that validates. Defaults to 1.
        val_interval (int): Validation interval. Defaults to 1.
        dynamic_intervals (list[tuple[int, int]], optional): (milestone,
            interval) pairs. Defaults to None.
        seed_each_epoch (bool): Seed the RNGs from ``(runner.seed, epoch)``
            at the start of each epoch. Defaults to True.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 max_epochs: int,
                 val_begin: int = 1,
                 val_interval: int = 1,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None,
                 seed_each_epoch: bool = True) -> None:
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval, dynamic_intervals)
        self.seed_each_epoch = seed_each_epoch
        self._skipper = install_skippable_batch_sampler(self.dataloader)

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

    def _seed_epoch(self) -> None:
        seed = self.runner.seed
        if self.seed_each_epoch and seed is not None:
            seq = np.random.SeedSequence([int(seed) % 2**32, self._epoch])
            seed_all(int(seq.generate_state(1)[0]))

    def _restore_rng(self, skipped: int) -> None:
        state = self.runner.message_hub.get_info(RNG_STATE_KEY)
        if state is None:
            print_log(
                'The checkpoint holds no RNG state (it was not written by '
                'ResumableEpochBasedTrainLoop): the data order is restored, '
                'random augmentation and drop path are not.',
                logger='current', level=logging.WARNING)
        elif get_world_size() > 1:
            print_log(
                'Multi-process training: the RNG state of the checkpoint '
                "is rank 0's only, so the RNGs keep this epoch's seed; the "
                'data order is restored exactly.', logger='current')
        else:
            set_rng_state(state)
        print_log(
            f'Resumed in the middle of epoch {self._epoch + 1}: skipped its '
            f'first {skipped} batches (already trained on).',
            logger='current')

    def run_epoch(self) -> None:
        """Iterate one epoch, from where the checkpoint left it."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done = self._batches_done_in_epoch()
        self._seed_epoch()
        if done and self._skipper is not None:
            self._skipper.skip = done
        iterator = iter(self.dataloader)
        if self._skipper is not None:
            self._skipper.skip = 0
        if done and self._skipper is None:  # loader without batch sampler
            for _ in range(done):
                next(iterator)
        if done:  # after the iterator drew its base seed
            self._restore_rng(done)
        for idx, data_batch in enumerate(iterator, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run_iter(self, idx: int, data_batch: Any) -> None:
        """One batch; stores the RNG state before ``after_train_iter``."""
        self.runner.call_hook(
            'before_train_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self.runner.model.train_step(
            data_batch, optim_wrapper=self.runner.optim_wrapper)
        # the state a resumed run must start the next batch from: the
        # after_train_iter hooks (CheckpointHook among them) draw nothing
        self.runner.message_hub.update_info(RNG_STATE_KEY, get_rng_state())
        self.runner.call_hook(
            'after_train_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)
        self._iter += 1
