"""A new user's first hour: the documented commands work on the shipped
configs, and each plausible mistake gets one paragraph (exit status 1).

Every test reproduces a user's command, or its shortest equivalent, on tiny
generated data."""
import argparse
import glob
import os
import os.path as osp
from copy import deepcopy

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.utils import (
    REPO,
    explain,
    load_config,
    load_tool,
    make_split_folders,
    run_tool,
    tiny_dense_config,
)
from xcit_mm.cli.config_checks import check_cfg_options
from xcit_mm.utils.errors import ConfigError, ImageLoadError

DEMO = 'configs/xcit/xcit-digits_demo.py'
SNIPPETS = sorted(glob.glob(osp.join(REPO, 'configs', '_snippets_', '*.py')))
#: The demo with a 1-block, 32-wide XCiT and 2 classes.
TINY = ['model.backbone.arch.embed_dims=32', 'model.backbone.arch.depth=1',
        'model.backbone.arch.num_heads=2', 'model.head.in_channels=32',
        'model.head.num_classes=2', 'data_preprocessor.num_classes=2']
REMEDY = ['train_dataloader.dataset.pipeline.0.type=xcit_mm.LoadImageFromFile',
          'train_dataloader.dataset.pipeline.0.on_error=skip']


def demo_options(root: str, *extra: str) -> list:
    return ['--cfg-options'] + TINY + [
        f'{d}.dataset.data_root={root}'
        for d in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ] + ['train_dataloader.batch_size=4', 'train_cfg.max_epochs=1',
         'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
         'default_hooks.logger.interval=1', *extra]


def tiny_demo_cfg(root: str = None) -> Config:
    from mmengine.config import DictAction
    cfg = Config.fromfile(osp.join(REPO, DEMO))
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(
        demo_options(root or 'data/digits')).cfg_options)
    return cfg


def break_images(root: str) -> dict:
    """A 0-byte PNG and a text file named .png in the training folders."""
    empty = osp.join(root, 'train', 'class_0', 'empty.png')
    corrupt = osp.join(root, 'train', 'class_1', 'corrupt.png')
    open(empty, 'wb').close()
    with open(corrupt, 'w') as f:
        f.write('not an image\n')
    return dict(empty=empty, corrupt=corrupt)


def one_paragraph_error(proc, tool: str) -> str:
    assert proc.returncode == 1, explain(proc)
    assert 'Traceback' not in proc.stderr, explain(proc)
    start = proc.stderr.index(f'{tool}: error: ')
    return ' '.join(proc.stderr[start:].split())


# 1, 5 and 8. broken images; --amp on the CPU; --resume with nothing ------
def test_broken_image_named_then_readme_remedy_with_amp_and_resume(tmp_path):
    root = make_split_folders(str(tmp_path / 'data'))
    break_images(root)
    work = str(tmp_path / 'work')
    proc = run_tool(['tools/train.py', DEMO, '--work-dir', work] +
                    demo_options(root))
    msg = one_paragraph_error(proc, 'train.py')
    assert 'Cannot load image' in msg and (
        'empty.png: it is empty (0 bytes)' in msg
        or 'corrupt.png: it is not a decodable image' in msg), msg
    assert "on_error='skip'" in msg
    # the remedy the message names, on_error='skip' alone (the shipped
    # pipelines already load with xcit_mm.LoadImageFromFile, so the key
    # checker knows the argument; no --allow-new-keys), with the README's
    # `--amp --resume` on the CPU and a work dir without a checkpoint
    proc = run_tool(['tools/train.py', DEMO, '--amp', '--resume',
                     '--work-dir', work] + demo_options(root, REMEDY[1]))
    assert proc.returncode == 0, explain(proc)
    log = proc.stdout + proc.stderr
    assert 'Skipping image' in log
    assert '--amp on the CPU: bf16 autocast' in log
    assert 'No complete checkpoint to resume from in the work dir' in log
    assert 'training starts from scratch' in log
    assert 'Epoch(train) [1][3/3]' in log  # 10 files: 2 skipped, refetched


def test_shipped_pipelines_name_both_kinds_of_broken_image(tmp_path):
    """The shipped config's own pipeline (xcit_mm.LoadImageFromFile)."""
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope

    bad = break_images(make_split_folders(str(tmp_path / 'data')))
    cfg = tiny_demo_cfg()
    init_default_scope('mmpretrain')
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    for path, problem in ((bad['empty'], 'it is empty (0 bytes)'),
                          (bad['corrupt'], 'it is not a decodable image')):
        with pytest.raises(ImageLoadError) as info:
            pipeline(dict(img_path=path, gt_label=0))
        assert f'Cannot load image {path}: {problem}' in str(info.value)


def test_cfg_options_checked_against_the_type_they_set():
    cfg = Config.fromfile(osp.join(REPO, DEMO))
    check_cfg_options(cfg, {k: v for k, v in (o.split('=') for o in REMEDY)})
    with pytest.raises(ConfigError, match="Did you mean 'on_error'"):
        check_cfg_options(cfg, {
            REMEDY[0].split('=')[0]: 'xcit_mm.LoadImageFromFile',
            'train_dataloader.dataset.pipeline.0.on_eror': 'skip'})


# 2. XCiT in your own mmpretrain / mmdet / mmseg config ----------------------
@pytest.mark.parametrize('path', SNIPPETS, ids=osp.basename)
def test_own_config_recipes_build_and_run(path, capsys):
    """get_flops.py on each recipe as written (it builds the model of the
    library's own base config with XCiT and runs it)."""
    tool = load_tool('tools/analysis_tools/get_flops.py')
    assert tool.main([path, '--shape', '64']) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    lib = osp.basename(path).split('_')[0]
    assert f'({lib} ' in out and 'FLOPs:' in out


def test_mmseg_pretrained_is_explained(tmp_path, capsys):
    """The recipe without ``pretrained=None``: mmseg's base model hands its
    ResNet weights to XCiT."""
    cfg = tmp_path / 'user.py'
    cfg.write_text(
        "_base_ = 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py'\n"
        "model = dict(backbone=dict(_delete_=True, type='xcit_mm.XCiT', "
        "arch='s12', out_type='featmap'))\n")
    tool = load_tool('tools/analysis_tools/get_flops.py')
    assert tool.main([str(cfg), '--shape', '64']) == 1
    err = ' '.join(capsys.readouterr().err.split())
    assert "XCiT got pretrained='open-mmlab://resnet50_v1c'" in err
    assert 'model.pretrained=None' in err and 'Traceback' not in err
    assert '--cfg-options model.pretrained=None' in err


# 3. attention maps of the 1-channel demo model ------------------------------
def test_visualize_attention_on_the_grayscale_demo(tmp_path, capsys):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    cfg = tiny_demo_cfg()
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(cfg.model, data_preprocessor=None))
    ckpt = str(tmp_path / 'demo.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    img = np.random.default_rng(0).integers(0, 255, (8, 8, 3), np.uint8)
    cv2.imwrite(str(tmp_path / 'digit.png'), img)
    tool = load_tool('tools/analysis_tools/visualize_attention.py')
    out = tmp_path / 'attn'
    assert tool.main([DEMO, ckpt, str(tmp_path / 'digit.png'), '--out-dir',
                      str(out), '--img-size', '32', '--cfg-options'] +
                     TINY) == 0, capsys.readouterr().err
    assert (out / 'input.png').is_file() and (out / 'cls_attn_mean.png'
                                               ).is_file()
    # the 1-channel input is the luma that grayscale decoding gives
    from xcit_mm.visualization.attention import to_input
    rgb = np.ascontiguousarray(img[..., ::-1])
    x = to_input(rgb, [0.], [1.], in_channels=1)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    assert x.shape == (1, 1, 8, 8)
    assert np.abs(x[0, 0].numpy() - gray).max() <= 1


# 4. --show-dir draws every image --------------------------------------------
def test_show_dir_draws_every_test_image(tmp_path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    root = make_split_folders(str(tmp_path / 'data'))
    for path in glob.glob(f'{root}/val/*/*.png'):  # unique names, as digits
        os.rename(path, path[:-4] + osp.basename(osp.dirname(path)) + '.png')
    cfg = tiny_demo_cfg(root)
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(cfg.model, data_preprocessor=dict(
        type='ClsDataPreprocessor', **cfg.data_preprocessor)))
    ckpt = str(tmp_path / 'demo.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    show = tmp_path / 'show'
    tool = load_tool('tools/test.py')
    tool.main([DEMO, ckpt, '--work-dir', str(tmp_path / 'test'),
               '--show-dir', str(show)] + demo_options(root))
    drawn = glob.glob(f'{show}/**/*.png', recursive=True)
    assert len(drawn) == 8  # the 8 validation images, not 1


# 5. --amp on the CPU ----------------------------------------------------
def test_autocast_optim_wrapper_runs_the_forward_in_bf16():
    from xcit_mm.runtime import AutocastOptimWrapper
    layer = torch.nn.Linear(4, 4)
    wrapper = AutocastOptimWrapper(
        optimizer=torch.optim.SGD(layer.parameters(), lr=0.1))
    with wrapper.optim_context(layer):
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().sum())
    assert layer.weight.dtype == torch.float32


# 6. one FLOP definition -----------------------------------------------------
def test_flops_at_each_configs_own_input_size():
    from xcit_mm.utils.flops import config_input_shape
    shapes = {
        'configs/mask_rcnn/mask-rcnn_xcit-t12-p16_fpn_1x_coco.py':
        (3, 800, 1344),
        'configs/upernet/upernet_xcit-t12-p16_8xb2-160k_ade20k-512x512.py':
        (3, 512, 512),
        DEMO: (1, 32, 32),
    }
    for path, shape in shapes.items():
        assert config_input_shape(load_config(osp.join(REPO, path))) == \
            shape, path


def test_gen_metafiles_and_get_flops_count_the_same():
    gen = load_tool('tools/misc/gen_metafiles.py')
    cfg = tiny_dense_config(osp.join(
        REPO, 'configs/mask_rcnn/mask-rcnn_xcit-t12-p16_fpn_1x_coco.py'))
    fn, _ = gen.flop_counter()
    table = gen.measure_flops(fn, deepcopy(cfg), (3, 64, 64))
    from xcit_mm.utils.flops import count_config_flops
    tool = count_config_flops(cfg, (64, 64))
    assert table == tool['flops']
    assert 'RoI heads not counted' in tool['counted']
    from xcit_mm.utils.flops import FLOPS_DEFINITION
    assert FLOPS_DEFINITION in gen.markdown_table(
        dict(Collections=[dict(Name='x')], Models=[]), REPO, REPO)


# 7. one CLI path for every tool that reads a config -------------------------
@pytest.mark.parametrize('tool,args', [
    ('tools/misc/print_config.py', []),
    ('tools/analysis_tools/get_flops.py', []),
    ('tools/analysis_tools/browse_dataset.py', ['-o', 'unused']),
    ('tools/analysis_tools/visualize_attention.py',
     ['x.pth', 'x.png', '--out-dir', 'unused']),
])
def test_every_config_tool_checks_cfg_options(tool, args, capsys):
    module = load_tool(tool)
    assert module.main([DEMO, *args, '--cfg-options',
                        'model.backbone.drop_pth_rate=0.1']) == 1
    err = ' '.join(capsys.readouterr().err.split())
    assert "Did you mean 'drop_path_rate'" in err and 'Traceback' not in err
    assert module.main([DEMO, *args, '--cfg-options', 'max_epochs=2']) == 1
    err = ' '.join(capsys.readouterr().err.split())
    assert "'max_epochs' is a variable of the config file" in err
    assert '--cfg-options train_cfg.max_epochs=VALUE' in err


# 8. a config variable set on the command line -------------------------------
def test_train_refuses_a_config_variable(capsys):
    tool = load_tool('tools/train.py')
    with pytest.raises(SystemExit) as info:
        tool.main([DEMO, '--cfg-options', 'max_epochs=2'])
    assert info.value.code == 1
    err = ' '.join(capsys.readouterr().err.split())
    assert "train.py: error: --cfg-options max_epochs: 'max_epochs' is a " \
        'variable of the config file (max_epochs = 30)' in err
    assert 'computed from it instead: train_cfg.max_epochs,' in err
    assert 'param_scheduler.1.end' in err
    # what the variable was computed into is still accepted
    check_cfg_options(Config.fromfile(osp.join(REPO, DEMO)),
                      {'train_cfg.max_epochs': 2})


# 9. the shipped configs under the libraries' own tools/train.py: see
# tests/test_e2e/test_same_run_any_tool.py


# a value of the wrong type in --cfg-options ----------------------------------
@pytest.mark.parametrize('option,expected', [
    ('train_dataloader.batch_size=abc', "'abc' is text. Give an integer"),
    ('optim_wrapper.optimizer.lr=1e-3x', "'1e-3x' is text. Give a number"),
    ('train_dataloader.batch_size=2.5', '2.5 is a fraction'),
])
def test_typed_cfg_options_refused_before_anything_is_built(
        tmp_path, capsys, option, expected):
    tool = load_tool('tools/train.py')
    with pytest.raises(SystemExit) as info:
        tool.main([DEMO, '--work-dir', str(tmp_path / 'w'),
                   '--cfg-options', option])
    assert info.value.code == 1
    err = ' '.join(capsys.readouterr().err.split())
    assert f'train.py: error: --cfg-options {option.split("=")[0]}=' in err
    assert expected in err and 'Traceback' not in err, err
    assert not (tmp_path / 'w').exists()
    # what a config may take is still accepted: an int for a float, None,
    # a pair for a size
    check_cfg_options(Config.fromfile(osp.join(REPO, DEMO)), {
        'optim_wrapper.optimizer.lr': 1, 'train_dataloader.batch_size': 8,
        'model.backbone.drop_path_rate': None,
        'model.backbone.patch_size': [8, 8]})
