"""Every use of mmengine's (and torch's) private internals, in one place.

``requirements/runtime.txt`` allows a range of mmengine releases. Everything
else in xcit_mm goes through public API; what cannot is here, each with the
reason mmengine offers no public way, and each checked by
``tests/test_runtime/test_mmengine_private.py``, which fails as soon as an
mmengine (or torch) release changes what is relied on. An upgrade is then
one file to audit.

The resumable loops additionally subclass mmengine's loops and read their
``_epoch`` / ``_iter`` / ``_max_iters`` counters (the public ``epoch`` /
``iter`` properties are read-only, and ``Runner.resume`` itself writes
these names); the atomic checkpoint hook overrides
``CheckpointHook._save_checkpoint_with_step`` (the only place where the
order of save, pointer and deletion is decided). Both are checked by the
same test file.
"""
from typing import Any, Callable, Dict, Tuple

from mmengine.runner import CheckpointLoader
from mmengine.runner import loops as _loops

#: Private names relied on, for the test and for the count in the docs.
PRIVATE_NAMES: Tuple[str, ...] = (
    'mmengine.runner.CheckpointLoader._schemes',
    'mmengine.runner.checkpoint.load_url (module attribute replaced)',
    'mmengine.runner.loops._InfiniteDataloaderIterator',
    'mmengine.runner.loops._InfiniteDataloaderIterator._epoch',
    'mmengine.runner.loops.calc_dynamic_intervals',
    'mmengine.runner.BaseLoop._epoch / _iter / _max_iters (subclassed)',
    'mmengine.hooks.CheckpointHook._save_checkpoint_with_step (overridden)',
    'mmengine.logging.HistoryBuffer._statistics_methods',
    'mmengine.registry.Registry._children',
    'mmengine.registry.Registry._search_child',
    'mmengine.model.BaseModel._run_forward (and the DDP wrapper\'s)',
    'torch.utils.data.DataLoader.__setattr__ guard (object.__setattr__)',
    'mmengine.runner.Runner._resume / _load_from (read by load_or_resume)',
    'mmengine.runner.Runner._train_loop',
)

#: The loop counters the resumable loops read and set (see module doc).
LOOP_COUNTERS = ('_epoch', '_iter', '_max_iters', '_max_epochs')

#: Overridden by ``xcit_mm.AtomicCheckpointHook``.
CHECKPOINT_HOOK_SAVE = '_save_checkpoint_with_step'


def checkpoint_loaders() -> Dict[str, Callable]:
    """A copy of mmengine's prefix -> loader table.

    Reason: :func:`xcit_mm.runtime.safe_loading` registers its loaders with
    the public ``CheckpointLoader.register_scheme`` and must put the previous
    ones back afterwards; mmengine has no public getter for them.
    """
    return dict(CheckpointLoader._schemes)


def restore_checkpoint_loaders(saved: Dict[str, Callable]) -> None:
    """Put back a table returned by :func:`checkpoint_loaders` (keeping
    mmengine's longest-prefix-first order)."""
    CheckpointLoader._schemes.clear()
    CheckpointLoader._schemes.update(saved)


def url_loader() -> Callable:
    """The function mmengine's checkpoint loaders download with
    (``mmengine.runner.checkpoint.load_url``, torch hub's
    ``load_state_dict_from_url``, which unpickles with
    ``weights_only=False``).

    Reason: mmengine's ``torchvision://`` / ``modelzoo://``,
    ``open-mmlab://`` / ``openmmlab://`` and ``mmcls://`` loaders resolve
    a model name through mmengine's URL tables and then call the module's
    ``load_from_http``, which calls this name. Replacing the one function
    they share routes all of them through xcit_mm's safe loading without
    copying their name resolution; mmengine has no public hook for it.
    """
    from mmengine.runner import checkpoint
    return checkpoint.load_url


def set_url_loader(loader: Callable) -> None:
    """Make mmengine's checkpoint loaders download with ``loader`` (see
    :func:`url_loader`; put the previous one back with this too)."""
    from mmengine.runner import checkpoint
    checkpoint.load_url = loader


def infinite_iterator(dataloader: Any, passes: int) -> Any:
    """mmengine's endless data-loader iterator, at pass ``passes``.

    Reason: ``IterBasedTrainLoop`` builds this iterator in ``__init__`` (at
    pass 0, loading batches at once); the resumable loop needs the same
    iterator made later, at the resumed pass, and mmengine exports neither
    the class nor a setter for its pass counter.
    """
    iterator = _loops._InfiniteDataloaderIterator(dataloader)
    iterator._epoch = passes
    return iterator


def dynamic_intervals(val_interval: int, dynamic: Any) -> Tuple[list, list]:
    """mmengine's ``calc_dynamic_intervals``.

    Reason: the resumable iteration loop replaces
    ``IterBasedTrainLoop.__init__`` (which would start the iterator) and
    must compute the validation milestones exactly as mmengine does.
    """
    return _loops.calc_dynamic_intervals(val_interval, dynamic)


def history_buffer_statistics() -> set:
    """The statistics method names that ``HistoryBuffer`` pickles as
    ``getattr(HistoryBuffer, name)``.

    Reason: the safe checkpoint loader allows exactly these ``getattr``
    lookups while unpickling a message hub, and mmengine keeps the list
    private.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    return set(HistoryBuffer._statistics_methods)


def registry_children(registry: Any) -> list:
    """The child registries of ``registry``.

    Reason: "did you mean" suggestions for an unknown ``type`` search every
    scope (mmpretrain, mmdet, xcit_mm ...); mmengine exposes only a search
    by scope name (``_search_child``, private too), not the list.
    """
    return list(registry._children.values())


def search_child(registry: Any, scope: str) -> Any:
    """The registry of ``scope`` under ``registry`` (or None).

    Reason: the same suggestions start from the scope the config names;
    mmengine looks it up this way in ``Registry.get`` and offers no public
    lookup by scope.
    """
    return registry._search_child(scope)


def run_forward(module: Any, data: Any, mode: str) -> Any:
    """``module(**data, mode=mode)`` as mmengine's ``train_step`` calls it
    (a dict of inputs is unpacked, a list or tuple passed positionally).

    Reason: ``xcit_mm.DINO.train_step`` writes DINO's step (backward, clip,
    freeze, step, EMA) itself but must run the forward through the module
    it is given -- the DDP wrapper in distributed runs, so that gradients
    are synchronised -- exactly as mmengine's ``train_step`` does.
    """
    return module._run_forward(data, mode=mode)


def set_dataloader_attr(dataloader: Any, name: str, value: Any) -> None:
    """Set ``batch_sampler`` or ``dataset`` of a DataLoader that has no
    iterator yet.

    Reason: torch's ``DataLoader.__setattr__`` refuses these names after
    construction, as a guard against changing them under a live iterator;
    the resumable loops wrap them before any iterator exists.
    """
    assert getattr(dataloader, '_iterator', None) is None, \
        'the data loader is already iterated'
    object.__setattr__(dataloader, name, value)


def set_resume_point(runner: Any, resume: bool, load_from: Any) -> None:
    """Set what ``Runner.load_or_resume`` resumes from, after ``__init__``.

    Reason: ``xcit_mm.Runner`` resumes a *training* run that torchrun
    restarted or Slurm requeued; whether the runner trains is known only
    when ``train()`` is called (``tools/test.py`` builds it from the same
    config), and mmengine reads the choice from these attributes only.
    """
    runner._resume = resume
    runner._load_from = load_from


def train_loop_built(runner: Any) -> bool:
    """Whether ``runner`` has built its training loop (or has none).

    Reason: mmengine's ``Runner.iter`` and ``Runner.epoch`` read
    ``runner.train_loop``, which builds the loop on first access -- and
    with it the training data set. A hook that reads ``runner.iter`` while
    testing (mmseg's ``SegVisualizationHook``) thereby reads the whole
    training set, or fails where only the test split is present. mmengine
    keeps the loop config, before it is built, in ``_train_loop`` and
    offers no public query.
    """
    from mmengine.runner import BaseLoop
    loop = runner._train_loop
    return loop is None or isinstance(loop, BaseLoop)
