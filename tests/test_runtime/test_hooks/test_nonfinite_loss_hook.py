"""NonFiniteLossHook with the real Runner: the loss turns NaN at a chosen
iteration (NaN input to the backbone, so BN statistics are polluted too)."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from tests.faults import NaNInputOnRankHook
from tests.utils import TINY_ARCH, make_image_folder
from xcit_mm.runtime import NonFiniteLossHook
from xcit_mm.utils.errors import NonFiniteLossError, NonFiniteWeightsError


class NaNWeightAfter(Hook):
    """Put a NaN into a weight at the end of iteration ``iteration``, before
    the checkpoint of that iteration is written."""

    priority = 'HIGHEST'

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.iteration:
            with torch.no_grad():
                runner.model.head.fc.weight[0, 0] = float('nan')


def _runner(tmp_path, hooks):
    data = make_image_folder(str(tmp_path / 'data'), per_class=4)
    return Runner(
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='xcit_mm.XCiT', arch=TINY_ARCH),
            head=dict(type='LinearClsHead', num_classes=2, in_channels=32),
            data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3)),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            batch_size=2, num_workers=0,
            dataset=dict(type='CustomDataset', data_root=data, pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=32),
                dict(type='PackInputs')]),
            sampler=dict(type='DefaultSampler', shuffle=False)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(
            type='xcit_mm.AtomicCheckpointHook', by_epoch=False,
            interval=1)),
        custom_hooks=hooks,
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        log_level='WARNING')


def _ckpt(tmp_path, it):
    return torch.load(osp.join(tmp_path, 'work', f'iter_{it}.pth'),
                      weights_only=False)['state_dict']


def _all_finite(sd):
    return all(torch.isfinite(v).all() for v in sd.values()
               if v.is_floating_point())


def test_stop_names_iteration_and_terms(tmp_path):
    runner = _runner(tmp_path, [NonFiniteLossHook('stop', interval=1),
                                NaNInputOnRankHook(3)])
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    msg = str(info.value)
    assert 'iteration 3/4 (epoch 1, batch 3/4)' in msg
    assert 'loss=nan' in msg and 'lower learning rate' in msg
    # stopped before the step: the weights in memory and on disk are finite
    # (only the in-memory BN statistics saw the NaN forward pass)
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    files = sorted(glob.glob(str(tmp_path / 'work' / 'iter_*.pth')))
    assert [osp.basename(f) for f in files] == ['iter_1.pth', 'iter_2.pth']
    assert all(_all_finite(_ckpt(tmp_path, i)) for i in (1, 2))


def test_deferred_check_never_writes_a_nonfinite_checkpoint(tmp_path):
    """The default reads a flag accumulated on the device: no sync per
    iteration, and it is read before each checkpoint."""
    hook = NonFiniteLossHook('stop')
    assert hook.interval == 50
    runner = _runner(tmp_path, [hook, NaNInputOnRankHook(3)])
    model = runner.model
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    msg = str(info.value)
    assert 'Non-finite loss at iteration 3/4: loss=nan' in msg
    assert 'found at iteration 3' in msg and 'checkpoints on disk' in msg
    # the loss was not checked before the step (that is what is saved) ...
    assert not all(torch.isfinite(p).all() for p in model.parameters())
    # ... but no checkpoint was written after it
    files = sorted(glob.glob(str(tmp_path / 'work' / 'iter_*.pth')))
    assert [osp.basename(f) for f in files] == ['iter_1.pth', 'iter_2.pth']
    assert all(_all_finite(_ckpt(tmp_path, i)) for i in (1, 2))


def test_deferred_check_every_interval(tmp_path):
    """Without checkpoints, the flag is read every ``interval`` iterations
    and names the first bad one."""
    runner = _runner(tmp_path, [NonFiniteLossHook('stop', interval=2),
                                NaNInputOnRankHook(1)])
    hooks = [h for h in runner.hooks
             if type(h).__name__ != 'AtomicCheckpointHook']
    runner._hooks = hooks
    with pytest.raises(NonFiniteLossError,
                       match=r'iteration 1/4.*found at iteration 2'):
        runner.train()
    assert not glob.glob(str(tmp_path / 'work' / 'iter_*.pth'))


def test_skip_discards_the_iteration(tmp_path):
    hook = NonFiniteLossHook('skip')
    runner = _runner(tmp_path, [hook, NaNInputOnRankHook(3)])
    runner.train()  # completes
    assert hook.skipped_iters == [3]
    before, after = _ckpt(tmp_path, 2), _ckpt(tmp_path, 3)
    assert _all_finite(after) and _all_finite(runner.model.state_dict())
    # no step, and the BN running statistics that the NaN forward pass
    # polluted were put back
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert not torch.equal(after['head.fc.weight'],
                           _ckpt(tmp_path, 4)['head.fc.weight'])


def test_skip_stops_after_max_skips(tmp_path):
    runner = _runner(tmp_path, [NonFiniteLossHook('skip', max_skips=0),
                                NaNInputOnRankHook(2)])
    with pytest.raises(NonFiniteLossError, match='1 consecutive'):
        runner.train()


def test_no_checkpoint_with_nan_weights(tmp_path):
    runner = _runner(tmp_path, [NonFiniteLossHook('stop'),
                                NaNWeightAfter(2)])
    with pytest.raises(NonFiniteWeightsError, match='head.fc.weight'):
        runner.train()
    assert not osp.exists(tmp_path / 'work' / 'iter_2.pth')
    assert _all_finite(_ckpt(tmp_path, 1))


def test_without_the_hook_nan_reaches_the_checkpoint(tmp_path):
    """What the hook prevents: mmengine trains on and saves NaN weights."""
    runner = _runner(tmp_path, [NaNInputOnRankHook(3)])
    runner.train()
    assert not _all_finite(_ckpt(tmp_path, 3))
