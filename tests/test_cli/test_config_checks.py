"""--cfg-options key checking, checkpoint paths in configs, and the
registry suggestions for a misspelled type."""
import pytest
from mmengine.config import Config

from xcit_mm.cli import explain_exception
from xcit_mm.cli.config_checks import (
    check_cfg_options,
    check_checkpoint_paths,
    iter_checkpoint_paths,
)
from xcit_mm.utils.errors import ConfigError, MissingFileError
from xcit_mm.utils.suggest import registry_suggestions


@pytest.fixture
def cfg():
    return Config(dict(
        default_scope='mmpretrain',
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='xcit_mm.XCiT', arch='s12'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=384),
            train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8)])),
        train_dataloader=dict(batch_size=2, dataset=dict(
            type='CustomDataset', data_root='x', pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='RandomResizedCrop', scale=224)])),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3),
                           paramwise_cfg=dict(norm_decay_mult=0.)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        custom_hooks=[dict(type='EMAHook')],
    ))


@pytest.mark.parametrize('key', [
    'model.backbone.arch',                     # in the config
    'model.backbone.with_cp',                  # an argument of XCiT
    'model.backbone.init_cfg',                 # a BaseModule argument
    'model.head.topk',                         # LinearClsHead argument
    'train_dataloader.num_workers',            # a DataLoader argument
    'train_dataloader.dataset.lazy_init',      # via **kwargs to BaseDataset
    'train_dataloader.dataset.pipeline.1.crop_ratio_range',
    'train_cfg.val_interval',                  # EpochBasedTrainLoop arg
    'optim_wrapper.clip_grad',                 # OptimWrapper argument
    'optim_wrapper.optimizer.betas',           # torch AdamW argument
    'optim_wrapper.paramwise_cfg.custom_keys',  # free-form dict
    'model.train_cfg.probs',                   # free-form under a model
    'default_hooks.checkpoint.max_keep_ckpts',
    'custom_hooks.0.momentum',
    'load_from', 'resume', 'randomness.seed',  # Runner arguments
    'env_cfg.cudnn_benchmark',
])
def test_accepted_keys(cfg, key):
    check_cfg_options(cfg, {key: 1})


@pytest.mark.parametrize('key,expected', [
    ('model.backbone.drop_pth_rate', "Did you mean 'drop_path_rate'"),
    ('model.backbone.archh', "Did you mean 'arch'"),
    ('train_dataloader.batchsize', "Did you mean 'batch_size'"),
    ('train_dataloader.dataset.data_rot', "Did you mean 'data_root'"),
    ('train_cfg.max_epoch', "Did you mean 'max_epochs'"),
    ('optim_wrapper.optimizer.weight_dcay', "Did you mean 'weight_decay'"),
    ('randomness.sed', "Did you mean 'seed'"),
    ('lod_from', "Did you mean 'load_from'"),
    ('custom_hooks.3.interval', 'is a list of 1'),
    ('model.backbone.arch.depth', "is a str ('s12'), not a dict"),
])
def test_rejected_keys(cfg, key, expected):
    with pytest.raises(ConfigError) as info:
        check_cfg_options(cfg, {key: 1})
    assert expected in str(info.value)
    assert '--allow-new-keys' in str(info.value) or 'list' in expected or \
        'dict' in expected
    check_cfg_options(cfg, {key: 1}, allow_new_keys=True)


def test_checkpoint_paths(tmp_path):
    cfg = Config(dict(model=dict(
        type='Distiller',
        backbone=dict(type='xcit_mm.XCiT', init_cfg=dict(
            type='Pretrained', checkpoint='open-mmlab://resnet50')),
        teacher=dict(init_cfg=dict(type='Pretrained',
                                   checkpoint=str(tmp_path / 'teacher.pth'))),
        teacher_ckpt=str(tmp_path / 'regnet.pth'))))
    found = dict(iter_checkpoint_paths(cfg.model, 'model'))
    assert found == {
        'model.teacher.init_cfg.checkpoint': str(tmp_path / 'teacher.pth'),
        'model.teacher_ckpt': str(tmp_path / 'regnet.pth')}
    with pytest.raises(MissingFileError) as info:
        check_checkpoint_paths(cfg)
    assert 'The teacher checkpoint' in str(info.value)
    assert '--cfg-options model.teacher.init_cfg.checkpoint=PATH' in str(
        info.value)
    (tmp_path / 'teacher.pth').touch()
    (tmp_path / 'regnet.pth').touch()
    check_checkpoint_paths(cfg)


def test_registry_suggestions_and_explanations():
    assert registry_suggestions('xcit_mm.XCiTT', 'model',
                                'mmpretrain')[0] == 'xcit_mm.XCiT'
    assert 'CheckpointHook' in registry_suggestions('ChekpointHook', 'hook',
                                                    'mmpretrain')
    assert 'mmdet.FPN' in registry_suggestions('FPNN', 'model', 'mmpretrain')
    text = explain_exception(KeyError(
        'CosineAnealingLR is not in the mmpretrain::parameter scheduler '
        'registry. Please check whether the value of ...'))
    assert "Did you mean 'CosineAnnealingLR'" in text
    assert explain_exception(KeyError('some_key')) is None  # a bug
    assert explain_exception(ValueError('x')) is None


def test_command_line_form_of_library_fixes():
    """Library errors name config keys and remedies as data; the tools add
    ``--cfg-options`` and the command."""
    from xcit_mm.cli.report import REMEDY_COMMANDS
    from xcit_mm.utils.errors import REMEDIES, CheckpointMismatchError
    assert set(REMEDY_COMMANDS) == set(REMEDIES)
    e = MissingFileError('No data; set a.data_root in the config.',
                         config_key=('a.data_root', 'b.data_root'),
                         config_value='PATH', remedy='sample-data')
    assert str(e) == 'No data; set a.data_root in the config.'
    assert explain_exception(e) == (
        'No data; set a.data_root in the config.\nOn the command line: '
        '--cfg-options a.data_root=PATH b.data_root=PATH. Without the data, '
        'python tools/demo.py runs the same tools on a small built-in data '
        'set.')
    e = ConfigError('Bad value.', config_key='model.pretrained',
                    config_value='None')
    assert e.config_keys == ('model.pretrained', )
    assert explain_exception(e).endswith(
        'On the command line: --cfg-options model.pretrained=None.')
    e = CheckpointMismatchError('Wrong layout.', remedy='convert-xcit')
    assert explain_exception(e) == (
        'Wrong layout.\nConverter: python tools/model_converters/xcit2mm.py'
        ' SRC DST [--backbone-only].')
    assert explain_exception(ConfigError('Plain.')) == 'Plain.'
