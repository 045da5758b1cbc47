"""Exact resume with the real Runner, in process: an iteration-based run
(DefaultSampler over two passes, and InfiniteSampler as in the seg configs)
and an epoch-based one, with random crops and flips (done in 2 persistent
data-loader workers, or in the main process) and drop path. A run that
stops at iteration 5 and resumes from ``iter_4`` (the middle of the second
pass / epoch) sees the same batches, the same crops and ends with the same
weights, bit for bit, as one that never stopped; the resumed
iteration-based run loads no sample of the 4 batches it skips. With
``randomness.seed=None`` (the default runtime) the resumed run takes the
seed its checkpoint drew, and equals an uninterrupted run of that seed."""
import hashlib

import pytest
import torch
from mmengine.hooks import Hook

from tests.utils import TINY_ARCH, make_image_folder
from xcit_mm.runtime import Runner

MAX_ITERS = 5  # 6 images, batch 2: 3 batches per pass


class _Stop(Exception):
    pass


class Record(Hook):
    """iteration -> digest of the batch (pixels after augmentation); stop
    before iteration ``stop``."""
    priority = 'HIGHEST'

    def __init__(self, stop=None):
        self.batches, self.stop = {}, stop

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.stop:
            raise _Stop
        digest = hashlib.sha1()
        for img in data_batch['inputs']:
            digest.update(img.numpy().tobytes())
        self.batches[runner.iter + 1] = digest.hexdigest()


def _cfg(data, work_dir, loop, sampler, workers, hooks, seed=3, **kw):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=16, crop_ratio_range=(0.3, 1.)),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]
    if loop == 'iter':
        train_cfg = dict(type='xcit_mm.ResumableIterBasedTrainLoop',
                         max_iters=MAX_ITERS)
    else:
        train_cfg = dict(type='xcit_mm.ResumableEpochBasedTrainLoop',
                         max_epochs=2)
    return dict(
        default_scope='mmpretrain',
        work_dir=work_dir,
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='xcit_mm.XCiT', arch=TINY_ARCH, patch_size=8,
                          drop_path_rate=0.5),
            head=dict(type='LinearClsHead', num_classes=2, in_channels=32),
            data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3)),
        train_dataloader=dict(
            batch_size=2, num_workers=workers,
            persistent_workers=workers > 0,
            dataset=dict(type='CustomDataset', data_root=data,
                         pipeline=pipeline),
            sampler=dict(type=sampler, shuffle=True)),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1,
                                          momentum=0.9)),
        default_hooks=dict(checkpoint=dict(
            type='xcit_mm.AtomicCheckpointHook', by_epoch=False,
            interval=4)),
        custom_hooks=hooks,
        randomness=dict(seed=seed, deterministic=seed is not None),
        log_level='WARNING',
        **kw)


@pytest.mark.parametrize('loop,sampler,workers,seed',
                         [('iter', 'DefaultSampler', 0, 3),
                          ('iter', 'InfiniteSampler', 2, 3),
                          ('epoch', 'DefaultSampler', 2, 3),
                          ('epoch', 'DefaultSampler', 0, None)])
def test_resume_is_exact(tmp_path, loop, sampler, workers, seed):
    data = make_image_folder(str(tmp_path / 'data'), per_class=3)
    cfg = dict(data=data, loop=loop, sampler=sampler, workers=workers)
    part = str(tmp_path / 'part')
    with pytest.raises(_Stop):
        Runner(**_cfg(work_dir=part, hooks=[Record(stop=5)], seed=seed,
                      **cfg)).train()
    # seed=None: the interrupted run drew a seed; the uninterrupted run to
    # compare with is the one with that seed
    drawn = torch.load(f'{part}/iter_4.pth', weights_only=False)['meta'][
        'seed']
    assert seed is None or drawn == seed
    full = Record()
    run = Runner(**_cfg(work_dir=str(tmp_path / 'full'), hooks=[full],
                        seed=drawn, **cfg))
    run.train()
    resumed = Record()
    again = Runner(**_cfg(work_dir=part, hooks=[resumed], resume=True,
                          load_from=f'{part}/iter_4.pth', seed=seed, **cfg))
    loads = []
    if workers == 0:
        dataset = again.train_loop.dataloader.dataset
        get = type(dataset.dataset).__getitem__
        type(dataset.dataset).__getitem__ = lambda self, i: (
            loads.append(i), get(self, i))[1]
        try:
            again.train()
        finally:
            type(dataset.dataset).__getitem__ = get
    else:
        again.train()
    n = len(full.batches)
    assert sorted(resumed.batches) == list(range(5, n + 1))
    # the same images, cropped and flipped the same way
    for it, digest in resumed.batches.items():
        assert digest == full.batches[it], it
    a, b = run.model.state_dict(), again.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    if workers == 0:  # only the batches of iterations 5.. were loaded
        assert len(loads) == 2 * (n - 4)
