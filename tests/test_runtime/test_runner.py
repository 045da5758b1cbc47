"""Resume on torch >= 2.6 (weights_only default) with the Runner a config
names (``runner_type='xcit_mm.Runner'``: mmengine's Runner reading
checkpoints through xcit_mm's allow-list), and without it (mmengine's
Runner, untouched by ``import xcit_mm``, refuses its own checkpoint)."""
import pickle

import pytest
import torch
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from tests.utils import TINY_ARCH


def tiny_cls_cfg(data_root: str, work_dir: str, max_epochs: int = 2) -> dict:
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=32),
        dict(type='PackInputs'),
    ]
    loader = dict(
        batch_size=4,
        num_workers=0,
        dataset=dict(type='CustomDataset', data_root=data_root,
                     pipeline=pipeline),
        sampler=dict(type='DefaultSampler', shuffle=True))
    return dict(
        default_scope='mmpretrain',
        runner_type='xcit_mm.Runner',
        work_dir=work_dir,
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='xcit_mm.XCiT', arch=TINY_ARCH),
            head=dict(type='LinearClsHead', num_classes=2, in_channels=32,
                      loss=dict(type='CrossEntropyLoss')),
            data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3,
                                   to_rgb=True)),
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        # explicit end: the schedule must not depend on where a run stops
        param_scheduler=[dict(type='CosineAnnealingLR', by_epoch=True,
                              T_max=2, begin=0, end=2)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0, deterministic=True),
        log_level='WARNING',
    )


def test_resume_round_trip(image_folder, tmp_path):
    full_dir = str(tmp_path / 'full')
    full = RUNNERS.build(tiny_cls_cfg(image_folder, full_dir))
    full.train()
    # The same run, stopped after epoch 1 ...
    part_dir = str(tmp_path / 'part')
    part = RUNNERS.build(tiny_cls_cfg(image_folder, part_dir, max_epochs=1))
    part.train()
    # ... and resumed from its epoch-1 checkpoint (torch.load weights_only).
    # mmengine's own Runner (no runner_type) cannot read it on torch >= 2.6
    plain = Runner.from_cfg(dict(
        tiny_cls_cfg(image_folder, str(tmp_path / 'plain')), resume=True,
        load_from=f'{part_dir}/epoch_1.pth'))
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        plain.train()
    resumed = RUNNERS.build(
        dict(tiny_cls_cfg(image_folder, part_dir), resume=True,
             load_from=f'{part_dir}/epoch_1.pth'))
    resumed.train()
    assert resumed.epoch == 2
    state_full = full.model.state_dict()
    state_resumed = resumed.model.state_dict()
    for k, v in state_full.items():
        assert torch.equal(v, state_resumed[k]), k


def test_requeued_job_resumes_training_only(image_folder, tmp_path,
                                            monkeypatch):
    """A Slurm job that was requeued (SLURM_RESTART_COUNT > 0) resumes its
    training from the work dir; a runner built for testing in that job
    keeps the checkpoint it was given."""
    import shutil
    work = str(tmp_path / 'work')
    RUNNERS.build(tiny_cls_cfg(image_folder, work, max_epochs=1)).train()
    given = str(tmp_path / 'given.pth')
    shutil.copy(f'{work}/epoch_1.pth', given)
    monkeypatch.setenv('SLURM_RESTART_COUNT', '1')
    cfg = dict(tiny_cls_cfg(image_folder, work), load_from=given)
    tester = RUNNERS.build(cfg)
    assert not tester.resuming and tester._load_from == given
    trainer = RUNNERS.build(cfg)
    trainer.train()
    assert trainer.resuming and trainer._load_from.endswith('epoch_1.pth')
    assert trainer.epoch == 2 and trainer.iter == 2 * len(
        trainer.train_dataloader)
