"""tools/train.py then tools/test.py, as subprocesses, on tiny generated
data: the demo config and a distillation config with a tiny teacher; and
tools/test.py --show-dir on a segmentation config where only the
validation split exists."""
import glob
import os.path as osp
import pickle
import shutil

import torch

from tests.utils import (
    REPO,
    explain,
    load_tool,
    make_ade,
    make_split_folders,
    run_tool,
    tiny_dense_config,
    tiny_teacher_cfg,
)
from xcit_mm.runtime import safe_load

TINY = ['model.backbone.arch.embed_dims=32', 'model.backbone.arch.depth=2',
        'model.backbone.arch.num_heads=2', 'model.head.in_channels=32']


def test_train_then_test_demo_config(tmp_path):
    root = make_split_folders(str(tmp_path / 'data'))
    work = str(tmp_path / 'work')
    options = ['--cfg-options'] + TINY + [
        f'{d}.dataset.data_root={root}'
        for d in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ] + ['model.head.num_classes=2', 'data_preprocessor.num_classes=2',
         'train_dataloader.batch_size=4', 'train_cfg.max_epochs=2',
         'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
         'default_hooks.logger.interval=1']
    config = 'configs/xcit/xcit-digits_demo.py'
    proc = run_tool(['tools/train.py', config, '--work-dir', work] + options)
    assert proc.returncode == 0, explain(proc)
    log = proc.stdout + proc.stderr
    assert 'Epoch(train) [2][2/2]' in log and 'Epoch(val) [2]' in log
    ckpt = osp.join(work, 'epoch_2.pth')
    assert osp.isfile(ckpt)

    out = str(tmp_path / 'preds.pkl')
    proc = run_tool(['tools/test.py', config, ckpt, '--work-dir',
                     str(tmp_path / 'test'), '--out', out] + options)
    assert proc.returncode == 0, explain(proc)
    assert 'accuracy/top1' in proc.stdout + proc.stderr
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 8
    assert preds[0]['pred_score'].shape == (2, )


def write_distill_config(tmp_path, teacher_ckpt: str) -> str:
    """A tiny run of the real xcit-s12-p16_in1k-dist.py recipe (224 px
    pipeline with RandAugment, random erasing, repeated augmentation,
    Mixup/CutMix, label smoothing, EMA) on 8 generated images."""
    root = make_split_folders(str(tmp_path / 'imagenet'))
    path = tmp_path / 'tiny_dist.py'
    path.write_text(f"""
_base_ = '{REPO}/configs/xcit/xcit-s12-p16_in1k-dist.py'
data_root = '{root}'
_classes = ('class_0', 'class_1')
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=32, depth=2,
                            num_heads=2),
                  patch_size=16),
    head=dict(num_classes=2, in_channels=32),
    teacher={tiny_teacher_cfg(2)!r},
    teacher_ckpt='{teacher_ckpt}')
data_preprocessor = dict(num_classes=2)
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=_classes)))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=_classes)))
test_dataloader = val_dataloader
val_evaluator = dict(topk=(1, ))
test_evaluator = val_evaluator
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True,
                        begin=0, end=1)]
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
""")
    return str(path)


def test_distillation_run_with_tiny_teacher(tmp_path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    teacher = MODELS.build(tiny_teacher_cfg(2))
    teacher_ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), teacher_ckpt)
    config = write_distill_config(tmp_path, teacher_ckpt)
    work = str(tmp_path / 'work')

    proc = run_tool(['tools/train.py', config, '--work-dir', work])
    assert proc.returncode == 0, explain(proc)
    log = proc.stdout + proc.stderr
    assert 'Loaded the distillation teacher TimmClassifier' in log
    assert 'loss_cls:' in log and 'loss_distill:' in log
    ckpt = safe_load(osp.join(work, 'epoch_1.pth'))
    teacher_keys = set(teacher.state_dict())
    for key in ('state_dict', 'ema_state_dict'):
        # (mmengine stores the EMA wrapper: module.* keys and a step count)
        keys = {k[len('module.'):] if k.startswith('module.') else k
                for k in ckpt[key]} - {'steps'}
        assert keys and all(k.startswith(('backbone.', 'head.'))
                            for k in keys), key
        assert not keys & teacher_keys
    state_groups = ckpt['optimizer']['param_groups']
    n_optim = sum(len(g['params']) for g in state_groups)
    assert n_optim == len([k for k in ckpt['state_dict']
                           if 'running_' not in k
                           and 'num_batches_tracked' not in k])

    # testing a distilled student needs no teacher checkpoint
    proc = run_tool(['tools/test.py', config, osp.join(work, 'epoch_1.pth'),
                     '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                     'model.teacher_ckpt=None'])
    assert proc.returncode == 0, explain(proc)
    assert 'accuracy/top1' in proc.stdout + proc.stderr


def test_segmentation_show_dir_without_the_training_split(tmp_path):
    """mmseg's visualisation hook reads runner.iter; mmengine answers by
    building the training loop and its data set: the test must neither
    need nor read the training split."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    ade = make_ade(str(tmp_path / 'ADEChallengeData2016'))
    for sub in ('images', 'annotations'):
        shutil.rmtree(osp.join(ade, sub, 'training'))
    cfg = tiny_dense_config(
        osp.join(REPO, 'configs/sem_fpn/'
                 'fpn_xcit-s12-p16_8xb2-80k_ade20k-512x512.py'),
        data_root=ade)
    # mmengine keeps one visualizer per name for the whole process: an
    # earlier in-process test's 'visualizer' (with its own save_dir) would
    # be reused; a fresh process, as on the command line, has none
    cfg.visualizer.name = f'visualizer_{tmp_path.name}'
    config = str(tmp_path / 'sem_fpn_tiny.py')
    cfg.dump(config)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'iter_2.pth')
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict(),
                    meta=dict(iter=2)), ckpt)
    show = str(tmp_path / 'show')
    # in-process (the command line's code path; a subprocess would import
    # mmseg a second time)
    metrics = load_tool('tools/test.py').main(
        [config, ckpt, '--work-dir', str(tmp_path / 'test'), '--show-dir',
         show])
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}
    drawn = glob.glob(f'{show}/**/*.png', recursive=True)
    assert len(drawn) == 2, drawn  # the 2 validation images
