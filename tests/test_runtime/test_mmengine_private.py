"""What xcit_mm relies on in mmengine's (and torch's) private internals,
each checked against the installed release: when an upgrade changes one of
them, a test here fails and names it (xcit_mm/runtime/mmengine_private.py
says why each is needed)."""
import inspect

import torch
from mmengine.hooks import CheckpointHook
from mmengine.logging import HistoryBuffer
from mmengine.registry import MODELS
from mmengine.runner import (
    CheckpointLoader,
    EpochBasedTrainLoop,
    IterBasedTrainLoop,
    Runner,
)
from torch.utils.data import DataLoader

from xcit_mm.runtime import mmengine_private as private


def test_the_list_is_complete():
    assert len(private.PRIVATE_NAMES) == 14


def test_checkpoint_loader_table_round_trip():
    saved = private.checkpoint_loaders()
    assert '' in saved and 'http://' in saved and 'torchvision://' in saved
    CheckpointLoader.register_scheme('xcit-test://', lambda *a: None)
    assert 'xcit-test://' in CheckpointLoader._schemes
    private.restore_checkpoint_loaders(saved)
    assert private.checkpoint_loaders() == saved
    # longest prefix first, as mmengine's lookup expects
    keys = list(CheckpointLoader._schemes)
    assert keys == sorted(keys, reverse=True)


def test_url_loader_is_what_the_model_zoo_loaders_download_with():
    from mmengine.runner import checkpoint
    assert private.url_loader() is checkpoint.load_url
    # every model-zoo scheme ends in load_from_http, which calls load_url
    assert 'load_url(' in inspect.getsource(checkpoint.load_from_http)
    for loader in (checkpoint.load_from_torchvision,
                   checkpoint.load_from_openmmlab,
                   checkpoint.load_from_mmcls):
        assert 'load_from_http(' in inspect.getsource(loader), loader
    saved = private.url_loader()
    private.set_url_loader(len)
    assert checkpoint.load_url is len
    private.set_url_loader(saved)
    assert checkpoint.load_url is saved


def test_infinite_iterator_starts_at_a_pass():
    loader = DataLoader(list(range(4)), batch_size=2)
    it = private.infinite_iterator(loader, passes=3)
    assert it._epoch == 3
    batches = [next(it).tolist() for _ in range(3)]
    assert batches == [[0, 1], [2, 3], [0, 1]]
    assert it._epoch == 4  # the pass counter moves on at the end


def test_dynamic_intervals():
    assert private.dynamic_intervals(10, [(20, 5)]) == ([0, 20], [10, 5])


def test_loop_counters_exist_and_back_the_public_properties():
    for loop in (EpochBasedTrainLoop, IterBasedTrainLoop):
        src = inspect.getsource(loop.__init__)
        for name in ('_epoch', '_iter'):
            assert f'self.{name}' in src, (loop.__name__, name)
    src = inspect.getsource(IterBasedTrainLoop.__init__)
    for name in private.LOOP_COUNTERS:
        assert f'self.{name}' in src, name
    # the body the resumable iteration loop replaces: it makes the iterator
    assert '_InfiniteDataloaderIterator' in src
    assert 'calc_dynamic_intervals' in src


def test_checkpoint_hook_saves_through_the_overridden_method():
    src = inspect.getsource(CheckpointHook)
    assert f'self.{private.CHECKPOINT_HOOK_SAVE}(' in src
    sig = inspect.signature(getattr(CheckpointHook,
                                    private.CHECKPOINT_HOOK_SAVE))
    assert list(sig.parameters) == ['self', 'runner', 'step', 'meta']


def test_load_or_resume_reads_the_resume_point():
    from mmengine.runner import Runner
    src = inspect.getsource(Runner.load_or_resume)
    assert 'self._resume' in src and 'self._load_from' in src
    runner = object.__new__(Runner)
    private.set_resume_point(runner, True, 'x.pth')
    assert (runner._resume, runner._load_from) == (True, 'x.pth')


def test_history_buffer_statistics():
    stats = private.history_buffer_statistics()
    assert {'mean', 'current'} <= stats | {'mean', 'current', 'min', 'max'}
    assert stats == set(HistoryBuffer._statistics_methods)


def test_registry_children():
    import mmpretrain.registry  # noqa: F401  (a child of mmengine's MODELS)
    scopes = {child.scope for child in private.registry_children(MODELS)}
    assert 'mmpretrain' in scopes


def test_search_child():
    import mmpretrain.registry  # noqa: F401
    assert private.search_child(MODELS, 'mmpretrain').scope == 'mmpretrain'
    assert private.search_child(MODELS, 'no-such-scope') is None


def test_run_forward_dispatches_dicts_and_lists():
    from mmengine.model import BaseModel

    class Echo(BaseModel):
        def forward(self, *args, mode='tensor', **kwargs):
            return args, kwargs, mode

    assert private.run_forward(Echo(), dict(a=1), 'loss') == (
        (), dict(a=1), 'loss')
    assert private.run_forward(Echo(), [1, 2], 'loss') == ((1, 2), {},
                                                           'loss')


def test_dataloader_attribute_guard():
    loader = DataLoader(list(range(4)), batch_size=2)
    try:
        loader.batch_sampler = None
    except ValueError:
        pass
    else:  # torch dropped its guard: object.__setattr__ is not needed
        raise AssertionError('DataLoader no longer guards batch_sampler')
    sampler = loader.batch_sampler
    private.set_dataloader_attr(loader, 'batch_sampler', sampler)
    assert loader.batch_sampler is sampler
    assert torch.utils.data.DataLoader.__setattr__ is not object.__setattr__


def test_train_loop_is_built_on_first_access():
    # Runner.iter / epoch read train_loop, which builds the loop from the
    # config kept in _train_loop: what train_loop_built looks at
    for prop in (Runner.iter, Runner.epoch):
        assert 'self.train_loop' in inspect.getsource(prop.fget)
    src = inspect.getsource(Runner.train_loop.fget)
    assert 'self._train_loop = self.build_train_loop(self._train_loop)' \
        in src
    runner = object.__new__(Runner)
    for loop, built in ((None, True), (dict(by_epoch=True), False)):
        runner._train_loop = loop
        assert private.train_loop_built(runner) is built
