"""Bad input through tools/train.py and tools/test.py: one clear paragraph
on stderr, exit status 1, no traceback.

The tools' ``main`` runs in-process (the same code path as the command
line); ``test_command_line_prints_no_traceback`` runs one real subprocess.
"""
import os
import os.path as osp

import pytest
import torch

from tests.faults import tiny_train_cfg
from tests.utils import (
    REPO,
    RunsCode,
    load_tool,
    make_image_folder,
    run_tool,
    write_config,
)

TRAIN, TEST = load_tool('tools/train.py'), load_tool('tools/test.py')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_image_folder(str(tmp_path_factory.mktemp('d') / 'images'),
                             per_class=2)


def _config(tmp_path, data_root, name='cfg.py', **changes):
    cfg = tiny_train_cfg(data_root, max_epochs=1)
    cfg.pop('custom_imports')
    cfg['custom_hooks'] = []
    cfg['log_level'] = 'WARNING'
    cfg['test_dataloader'] = dict(
        batch_size=2, num_workers=0,
        dataset=dict(type='CustomDataset', data_root=data_root,
                     pipeline=[dict(type='LoadImageFromFile'),
                               dict(type='Resize', scale=32),
                               dict(type='PackInputs')]),
        sampler=dict(type='DefaultSampler', shuffle=False))
    cfg['test_cfg'] = dict()
    cfg['test_evaluator'] = dict(type='Accuracy')
    for key, value in changes.items():
        node = cfg
        *parents, last = key.split('__')
        for p in parents:
            node = node[p]
        node[last] = value
    return write_config(str(tmp_path / name), cfg)


def _fails(capsys, tool, argv, *expected):
    with pytest.raises(SystemExit) as info:
        tool.main(argv)
    assert info.value.code == 1
    err = capsys.readouterr().err
    # (an mmengine logger left from an earlier test may hold a stream that
    # pytest closed: that '--- Logging error ---' is the test's, not ours)
    assert err.count('Traceback') == err.count('--- Logging error ---')
    err = err[err.index(f'{osp.basename(tool.__file__)}: error:'):]
    flat = ' '.join(err.split())
    print(flat)  # (pytest -s shows every message)
    for text in expected:
        assert text in flat, flat
    return flat


def _train(tmp_path, cfg, *extra):
    return [cfg, '--work-dir', str(tmp_path / 'work'), *extra]


def test_unknown_arch_and_patch_size(tmp_path, data, capsys):
    cfg = _config(tmp_path, data)
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--cfg-options',
                                 'model.backbone.arch=smal-12'),
           "Unknown XCiT arch 'smal-12'", "Did you mean ['small-12'")
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--cfg-options',
                                 'model.backbone.patch_size=14'),
           'patch_size must be one of [8, 16], got 14')


def test_wrong_input_channels(tmp_path, data, capsys):
    cfg = _config(tmp_path, data)
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--cfg-options',
                                 'model.backbone.in_channels=1'),
           'expects images of shape (B, 1, H, W), got (4, 3, 32, 32)',
           'Set in_channels=3')


def test_missing_dataset_folder_and_annotation_file(tmp_path, data, capsys):
    cfg = _config(tmp_path, str(tmp_path / 'no_such_data'))
    _fails(capsys, TRAIN, _train(tmp_path, cfg),
           'data set folder', 'no_such_data does not exist',
           'train_dataloader.dataset.data_root in the config',
           '--cfg-options train_dataloader.dataset.data_root=/path/to/data')
    cfg = _config(tmp_path, data, train_dataloader__dataset__ann_file=(
        'meta/train.txt'))
    _fails(capsys, TRAIN, _train(tmp_path, cfg), 'annotation file',
           'meta/train.txt does not exist',
           'train_dataloader.dataset.ann_file')
    _fails(capsys, TEST, [_config(tmp_path, str(tmp_path / 'gone')),
                          'x.pth'], 'CHECKPOINT x.pth does not exist')


def test_class_folders_without_images(tmp_path, capsys):
    root = tmp_path / 'images'
    for c in ('class_0', 'class_1'):
        (root / c).mkdir(parents=True)
    (root / 'class_0' / 'notes.txt').write_text('not an image')
    _fails(capsys, TRAIN, _train(tmp_path, _config(tmp_path, str(root))),
           f'The image folder {root}', 'its 2 class subfolders (class_0, '
           'class_1) hold no image file', '--cfg-options '
           'train_dataloader.dataset.data_root=/path/to/data')


def test_real_configs_without_imagenet_or_load_from(tmp_path, capsys):
    """The shipped ImageNet configs, as a user first runs them: no data,
    or no distilled 224 px checkpoint to fine-tune at 384 px from."""
    missing = str(tmp_path / 'no_imagenet')
    work = tmp_path / 'work'
    _fails(capsys, TRAIN, [
        osp.join(REPO, 'configs/xcit/xcit-n12-p16_in1k.py'), '--work-dir',
        str(work), '--cfg-options',
        f'train_dataloader.dataset.data_root={missing}'
    ], f"ImageNet data not found: '{missing}/train' does not exist",
        'n01440764', '--cfg-options train_dataloader.dataset.data_root=PATH '
        'val_dataloader.dataset.data_root=PATH', 'python tools/demo.py')
    _fails(capsys, TRAIN, [
        osp.join(REPO, 'configs/xcit/xcit-n12-p16_in1k-dist-384px.py'),
        '--work-dir', str(work)
    ], "load_from checkpoint 'work_dirs/xcit-n12-p16_in1k-dist/",
        '--cfg-options load_from=PATH')
    assert not list(work.glob('*.pth'))


def test_malformed_coco_json(tmp_path, capsys):
    ann = tmp_path / 'instances.json'
    ann.write_text('{"images": [{"id": 1, "file_name": "a.jpg", "width": 4,'
                   ' "height": 4}], "categories": [{"id": 1, "name": "x"}],'
                   ' "annotations": [{"id": 1, "image_id": 1, '
                   '"category_id": 1, "bbox": [0, 0, 5]}]}')
    cfg = tiny_train_cfg(str(tmp_path), max_epochs=1)
    cfg.pop('custom_imports')
    cfg.update(default_scope='mmdet', custom_hooks=[])
    cfg['model']['type'] = 'mmpretrain.ImageClassifier'
    cfg['model']['head'].update(type='mmpretrain.LinearClsHead', loss=dict(
        type='mmpretrain.CrossEntropyLoss'))
    cfg['model']['data_preprocessor']['type'] = \
        'mmpretrain.ClsDataPreprocessor'
    cfg['train_dataloader']['dataset'] = dict(
        type='CocoDataset', data_root=str(tmp_path),
        ann_file='instances.json', data_prefix=dict(img=''),
        metainfo=dict(classes=('x', )), pipeline=[])
    cfg['train_dataloader']['sampler'] = dict(type='DefaultSampler')
    path = write_config(str(tmp_path / 'coco.py'), cfg)
    _fails(capsys, TRAIN, _train(tmp_path, path),
           'Malformed COCO annotation file', 'annotations[0].bbox',
           'expected 4 numbers')
    ann.write_text('{"images": [')  # not even JSON
    _fails(capsys, TRAIN, _train(tmp_path, path), 'is not valid JSON',
           'line 1, column 13')


def _checkpoint_of(model_cfg, path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = MODELS.build(model_cfg)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


def test_truncated_checkpoint(tmp_path, data, capsys):
    """The tools' side of the loader's CheckpointError (the loader itself:
    tests/test_runtime/test_checkpoint.py)."""
    cfg = _config(tmp_path, data)
    good = _checkpoint_of(tiny_train_cfg(data)['model'], tmp_path / 'ok.pth')
    raw = open(good, 'rb').read()
    (tmp_path / 'cut.pth').write_bytes(raw[:len(raw) // 3])
    _fails(capsys, TEST, [cfg, str(tmp_path / 'cut.pth'), '--work-dir',
                          str(tmp_path / 'w')], 'truncated or corrupt',
           'cut.pth')


def test_text_file_saved_as_checkpoint(tmp_path, data, capsys):
    """A text (or HTML) page saved as .pth: tools/test.py and both
    converters say that it is not a checkpoint."""
    text = tmp_path / 'page.pth'
    text.write_text('hello, this is not a checkpoint\n')
    expected = ('page.pth', 'is not a checkpoint', 'zip archive that '
                'torch.save writes')
    _fails(capsys, TEST, [_config(tmp_path, data), str(text), '--work-dir',
                          str(tmp_path / 'w')], *expected)
    for tool in ('xcit2mm', 'crossformer2mm'):
        module = load_tool(f'tools/model_converters/{tool}.py')
        with pytest.raises(SystemExit) as info:
            module.main([str(text), str(tmp_path / 'out.pth')])
        assert info.value.code == 1
        err = ' '.join(capsys.readouterr().err.split())
        assert f'{tool}: error: ' in err and 'Traceback' not in err, err
        assert all(e in err for e in expected), err
    assert not (tmp_path / 'out.pth').exists()


def test_test_py_on_a_dino_config(tmp_path, capsys):
    """A DINO config has no test loop: tools/test.py names what evaluates
    a DINO checkpoint, before anything is built."""
    config = 'configs/dino/dino_xcit-digits_demo.py'
    _fails(capsys, TEST, [osp.join(REPO, config), str(tmp_path / 'x.pth'),
                          '--work-dir', str(tmp_path / 'w')],
           'is a DINO pre-training config', 'no test_dataloader',
           'tools/analysis_tools/knn_eval.py', 'configs/dino/benchmarks/')
    assert not (tmp_path / 'w').exists()


def test_checkpoint_of_another_model(tmp_path, data, capsys):
    cfg = _config(tmp_path, data)
    other = dict(tiny_train_cfg(data)['model'])
    other['backbone'] = dict(type='xcit_mm.XCiT', arch=dict(
        embed_dims=48, depth=2, num_heads=2))
    other['head'] = dict(type='LinearClsHead', num_classes=2, in_channels=48)
    wrong = _checkpoint_of(other, tmp_path / 'wider.pth')
    _fails(capsys, TEST, [cfg, wrong, '--work-dir', str(tmp_path / 'w')],
           'The checkpoint does not fit the model',
           'with another shape', 'nothing sound to evaluate',
           'Converter: python tools/model_converters/xcit2mm.py SRC DST')
    resnet = _checkpoint_of(dict(
        type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
        head=dict(type='LinearClsHead', num_classes=2, in_channels=512)),
        tmp_path / 'resnet.pth')
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--cfg-options',
                                 f'load_from={resnet}'),
           "does not fit the model: 1 of ",
           "At least 50% of the model's tensors must load",
           'nothing sound to fine-tune from')


def test_misspelled_type(tmp_path, data, capsys):
    cfg = _config(tmp_path, data)
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--cfg-options',
                                 'model.backbone.type=xcit_mm.XCit'),
           "Unknown type 'xcit_mm.XCit'", "Did you mean 'xcit_mm.XCiT'")
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--cfg-options',
                                 'model.head.type=LinearClassHead'),
           "Did you mean 'LinearClsHead'")


def test_missing_pretrained_checkpoint(tmp_path, data, capsys):
    cfg = _config(tmp_path, data, model__backbone__init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'xcit_s12.pth')))
    _fails(capsys, TRAIN, _train(tmp_path, cfg),
           'The pretrained checkpoint', 'xcit_s12.pth',
           'model.backbone.init_cfg.checkpoint in the config')


def test_unknown_cfg_options_key(tmp_path, data, capsys):
    cfg = _config(tmp_path, data)
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--cfg-options',
                                 'model.backbone.drop_pth_rate=0.1'),
           "'xcit_mm.XCiT' takes no argument 'drop_pth_rate'",
           "Did you mean 'drop_path_rate'", '--allow-new-keys')
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--cfg-options',
                                 'train_dataloader.num_workrs=2'),
           "Did you mean 'num_workers'")
    _fails(capsys, TEST, [cfg, 'x.pth', '--cfg-options', 'wrok_dir=x'],
           "Did you mean 'work_dir'")


def _bad_images(root):
    make_image_folder(root, per_class=4)
    open(osp.join(root, 'class_0', 'empty.png'), 'wb').close()
    with open(osp.join(root, 'class_1', 'junk.png'), 'wb') as f:
        f.write(b'definitely not a png')
    return root


def test_empty_or_unreadable_image(tmp_path, capsys):
    data = _bad_images(str(tmp_path / 'bad'))
    pipeline = tiny_train_cfg(data)['train_dataloader']['dataset'][
        'pipeline']
    pipeline[0] = dict(type='xcit_mm.LoadImageFromFile', on_error='raise')
    cfg = _config(tmp_path, data,
                  train_dataloader__dataset__pipeline=pipeline,
                  train_dataloader__sampler=dict(type='DefaultSampler',
                                                 shuffle=False))
    _fails(capsys, TRAIN, _train(tmp_path, cfg), 'Cannot load image',
           'empty.png: it is empty (0 bytes)', "on_error='skip'")
    # skip, by config: training goes on with a warning per bad file
    pipeline[0]['on_error'] = 'skip'
    # another file name: mmengine names a run's global instances (message
    # hub, scope, visualizer) after the config and the second it started
    cfg = _config(tmp_path, data, name='cfg_skip.py',
                  train_dataloader__dataset__pipeline=pipeline)
    TRAIN.main(_train(tmp_path, cfg))
    out = capsys.readouterr().out
    assert 'Skipping image' in out and 'it is empty (0 bytes)' in out
    assert 'junk.png: it is not a decodable image' in ' '.join(out.split())
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')


def test_crafted_pickle_refused_by_test_and_auto_resume(tmp_path, data,
                                                        capsys):
    """The tools' side of the loader's refusal (the loader itself:
    tests/test_runtime/test_checkpoint.py)."""
    cfg = _config(tmp_path, data)
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'epoch': 0, 'iter': 0},
                'x': RunsCode(marker)}, evil)
    _fails(capsys, TEST, [cfg, str(evil), '--work-dir', str(tmp_path / 'w')],
           'Refused to load', 'system')
    # --resume (auto) meets it as the latest checkpoint of the work dir,
    # through the resume-checkpoint search
    work = tmp_path / 'work'
    work.mkdir(exist_ok=True)
    os.replace(evil, work / 'iter_1.pth')
    (work / 'last_checkpoint').write_text(str(work / 'iter_1.pth'))
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--resume'),
           'Refused to load')
    assert not marker.exists()


def test_missing_config_and_bug_keeps_traceback(tmp_path, capsys):
    _fails(capsys, TRAIN, [str(tmp_path / 'nope.py')],
           'The config file', 'nope.py does not exist')
    _fails(capsys, TEST, [str(tmp_path / 'nope.py'), 'x.pth'],
           'The config file', 'nope.py does not exist')
    # a bug is not bad input: its traceback is kept
    with pytest.raises(ZeroDivisionError):
        TRAIN.run_cli('train.py', lambda: 1 / 0)


def test_command_line_prints_no_traceback(tmp_path, data):
    cfg = _config(tmp_path, data)
    proc = run_tool(['tools/train.py', cfg, '--work-dir', str(tmp_path / 'w'),
                     '--cfg-options', 'model.backbone.type=XCiTT'])
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert "train.py: error: Unknown type 'XCiTT'" in proc.stderr
    assert "'xcit_mm.XCiT'" in proc.stderr


def test_launcher_without_its_launcher(tmp_path, data, capsys,
                                       monkeypatch):
    """``--launcher pytorch`` typed by hand (no torchrun): one paragraph
    naming dist_train.sh / torchrun, from every tool with --launcher."""
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT',
                 'SLURM_PROCID'):
        monkeypatch.delenv(name, raising=False)
    cfg = _config(tmp_path, data)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save({}, str(ckpt))
    how = ('must be started by its launcher, which sets RANK, WORLD_SIZE, '
           'MASTER_ADDR, MASTER_PORT', '`bash tools/dist_train.sh CONFIG '
           'NUM_PROCS`', '`torchrun --nproc-per-node NUM_PROCS')
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--launcher', 'pytorch'),
           '--launcher pytorch runs one process', *how)
    _fails(capsys, TEST, [cfg, str(ckpt), '--launcher', 'pytorch'], *how)
    knn = load_tool('tools/analysis_tools/knn_eval.py')
    _fails(capsys, knn, [f'{REPO}/configs/dino/dino_xcit-digits_demo.py',
                         '--random-init', '--launcher', 'pytorch'], *how)
    _fails(capsys, TRAIN, _train(tmp_path, cfg, '--launcher', 'slurm'),
           'sets SLURM_PROCID', 'tools/slurm_train.sh')
