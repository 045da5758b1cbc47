"""ResumableEpochBasedTrainLoop with persistent data-loader workers, and
the RNG state it stores."""
import numpy as np
import pytest
import torch
from mmengine.hooks import Hook

from tests.utils import TINY_ARCH, make_image_folder
from xcit_mm.runtime import Runner
from xcit_mm.runtime.loops import (
    SkippableBatchSampler,
    get_rng_state,
    set_rng_state,
)


class _Crash(Exception):
    pass


class CrashBeforeIter(Hook):
    priority = 'HIGHEST'

    def __init__(self, iteration):
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            raise _Crash


class Record(Hook):

    def __init__(self):
        self.order = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.order[runner.iter + 1] = [
            s.img_path for s in data_batch['data_samples']
        ]


def _cfg(data_root, work_dir, hooks, **kw):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=32),
                dict(type='PackInputs')]
    return dict(
        default_scope='mmpretrain',
        work_dir=work_dir,
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='xcit_mm.XCiT', arch=TINY_ARCH),
            head=dict(type='LinearClsHead', num_classes=2, in_channels=32),
            data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3)),
        train_dataloader=dict(
            batch_size=2, num_workers=1, persistent_workers=True,
            dataset=dict(type='CustomDataset', data_root=data_root,
                         pipeline=pipeline),
            sampler=dict(type='DefaultSampler', shuffle=True)),
        train_cfg=dict(type='xcit_mm.ResumableEpochBasedTrainLoop',
                       max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1,
                                          momentum=0.9)),
        default_hooks=dict(checkpoint=dict(
            type='xcit_mm.AtomicCheckpointHook', by_epoch=False,
            interval=3)),
        custom_hooks=hooks,
        randomness=dict(seed=1, deterministic=True),
        log_level='WARNING',
        **kw)


def test_resume_mid_epoch_with_persistent_workers(tmp_path):
    data = make_image_folder(str(tmp_path / 'data'), per_class=5)  # 5/epoch
    full_order = Record()
    full = Runner(**_cfg(data, str(tmp_path / 'full'), [full_order]))
    full.train()
    crashed_order = Record()
    crashed = Runner(**
        _cfg(data, str(tmp_path / 'part'),
             [crashed_order, CrashBeforeIter(8)]))
    with pytest.raises(_Crash):
        crashed.train()
    resumed_order = Record()
    resumed = Runner(**
        _cfg(data, str(tmp_path / 'part'), [resumed_order], resume=True,
             load_from=str(tmp_path / 'part' / 'iter_6.pth')))
    resumed.train()
    # iteration 6 is the 1st of epoch 2: 7.. continue, skipping none of the
    # unseen and none twice; the workers outlived the shortened epoch
    assert sorted(resumed_order.order) == list(range(7, 11))
    for it in range(1, 11):
        got = (resumed_order.order if it > 6 else crashed_order.order)[it]
        assert got == full_order.order[it], it
    assert isinstance(resumed.train_dataloader.batch_sampler,
                      SkippableBatchSampler)
    assert resumed.train_loop.iter == full.train_loop.iter == 10
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_rng_state_round_trip():
    state = get_rng_state()
    a = (torch.rand(3), np.random.rand(3), __import__('random').random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), __import__('random').random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[2] == b[2]


def test_resume_layout_rules():
    """Another number of processes: the same global batch continues (a
    grouping batch sampler only from an epoch boundary); another data set
    length is left to the loop."""
    from xcit_mm.runtime.loops import check_resume_layout
    from xcit_mm.utils.errors import ConfigError
    saved = dict(world_size=8, batch_size=128, iters_per_epoch=1250,
                 samples_per_epoch=1281167)
    same = dict(saved, world_size=16, batch_size=64)
    assert check_resume_layout(saved, saved, 'c.pth') is None
    assert 'same global batch of 1024' in check_resume_layout(
        saved, same, 'c.pth', iteration=1300)
    assert check_resume_layout(saved, same, 'c.pth', iteration=2500,
                               contiguous=False) is not None
    with pytest.raises(ConfigError, match='epoch') as e:
        check_resume_layout(saved, same, 'c.pth', iteration=1300,
                            contiguous=False)
    assert e.value.config_keys == ('resume', )
    # 1250 -> 625 batches per epoch: refused, the batch size that fits
    double = dict(saved, world_size=16, iters_per_epoch=625)
    with pytest.raises(ConfigError,
                       match='train_dataloader.batch_size=64 for 16'):
        check_resume_layout(saved, double, 'c.pth', iteration=1300)
    odd = dict(saved, world_size=3, iters_per_epoch=3337)
    with pytest.raises(ConfigError, match='any number that divides 1024'):
        check_resume_layout(saved, odd, 'c.pth')
    assert check_resume_layout(
        saved, dict(double, samples_per_epoch=1000), 'c.pth') is None
