"""``xcit2mm.py SRC DST --config CONFIG``: official XCiT Mask R-CNN /
UperNet / Semantic FPN weights -> the models of our configs.

The official files cannot be downloaded here, so each test builds the model
of a real config at a tiny size (random weights and BN statistics), writes
its tensors in the layout of the official mmdet 2.11 / mmseg 0.11 files (the
mapping below and the expected head names are written from the official
``detection/backbone/xcit.py``, ``semantic_segmentation/backbone/xcit.py``,
their configs and the mmdet 2.x / mmseg 0.x heads, independently of the
converter), converts that back with the command-line tool and requires:

- every tensor bit-identical to the model's, no key missing or extra;
- ``tools/test.py CONFIG DST`` (the real Runner, mmdet's CocoMetric or
  mmseg's IoUMetric on tiny synthetic data, the strict
  ``CheckpointMatchHook``) to evaluate it;
- a clear ``CheckpointMismatchError`` for a file of another model.
"""
import glob
import os.path as osp
import re

import pytest
import torch

from tests.utils import (
    REPO,
    load_tool,
    make_ade,
    make_coco,
    randomize_,
    tiny_dense_config,
)
from xcit_mm.cli import explain_exception
from xcit_mm.models.backbones import XCiT
from xcit_mm.models.backbones.xcit_convert import (
    build_model_from_config,
    convert_dense_checkpoint,
)
from xcit_mm.utils.errors import CheckpointMismatchError, ConfigError

TOOL = 'tools/model_converters/xcit2mm.py'
TASKS = {
    # name: (config, data, metric, evaluate with tools/test.py); Semantic
    # FPN's checkpoint loads through the same mmseg Runner as UperNet's
    'mask-rcnn-p8': ('configs/mask_rcnn/mask-rcnn_xcit-s12-p8_fpn_3x_coco.py',
                     'coco', 'coco/bbox_mAP', True),
    'upernet-p16': ('configs/upernet/'
                    'upernet_xcit-s12-p16_8xb2-160k_ade20k-512x512.py',
                    'ade', 'mIoU', True),
    'sem-fpn-p16': ('configs/sem_fpn/'
                    'fpn_xcit-s12-p16_8xb2-80k_ade20k-512x512.py', 'ade',
                    'mIoU', False),
}


def to_official(sd: dict) -> dict:
    """Our names -> the official det/seg files' names.

    The official dense XCiT keeps the Fourier encoding as ``pos_embeder``
    and the multi-scale adapter as its own ``fpn1``..``fpn4`` attributes;
    the official FPN (Mask R-CNN, Semantic FPN) is the model's only neck.
    """
    out = {}
    for k, v in sd.items():
        if k.startswith('backbone.pos_embed.'):
            k = 'backbone.pos_embeder.' + k[len('backbone.pos_embed.'):]
        m = re.match(r'neck\.(0\.)?(fpn[1-4]\..*)$', k)
        if m:
            k = 'backbone.' + m.group(2)
        elif k.startswith('neck.1.'):
            k = 'neck.' + k[len('neck.1.'):]
        out[k] = v
    return out


# What the official files hold outside the XCA blocks, from the official
# code: the adapter's Sequential indices (p16: ConvT, SyncBN, GELU, ConvT;
# p8: ConvT) and the mmdet 2.x / mmseg 0.x head modules.
BN = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
CONV = ('weight', 'bias')


def _keys(prefix, names, suffixes):
    return {f'{prefix}{n}.{s}' for n in names for s in suffixes}


def official_head_keys(task: str, num_levels: int = 4) -> set:
    """Keys of the official model outside ``backbone.{blocks,patch_embed,
    pos_embeder}``."""
    if task.endswith('p16'):
        keys = _keys('backbone.fpn1.', ('0', '3'), CONV) | _keys(
            'backbone.fpn1.', ('1', ), BN) | _keys('backbone.fpn2.', ('0', ),
                                                   CONV)
    else:
        keys = _keys('backbone.fpn1.', ('0', ), CONV)
    levels = range(num_levels)
    if task.startswith(('mask-rcnn', 'sem-fpn')):  # FPN, ConvModules no norm
        keys |= _keys('neck.', [f'{m}.{i}.conv' for m in ('lateral_convs',
                                                          'fpn_convs')
                                for i in levels], CONV)
    if task.startswith('mask-rcnn'):
        keys |= _keys('rpn_head.', ('rpn_conv', 'rpn_cls', 'rpn_reg'), CONV)
        keys |= _keys('roi_head.bbox_head.', ('shared_fcs.0', 'shared_fcs.1',
                                              'fc_cls', 'fc_reg'), CONV)
        keys |= _keys('roi_head.mask_head.', [f'convs.{i}.conv' for i in
                                              range(4)] + ['upsample',
                                                           'conv_logits'],
                      CONV)
    elif task.startswith('upernet'):  # mmseg ConvModule + norm: no conv bias
        cms = [f'psp_modules.{i}.1' for i in range(4)] + [
            'bottleneck', 'fpn_bottleneck'] + [
                f'{m}.{i}' for m in ('lateral_convs', 'fpn_convs')
                for i in range(num_levels - 1)]
        keys |= _keys('decode_head.', [f'{c}.conv' for c in cms], ('weight',))
        keys |= _keys('decode_head.', [f'{c}.bn' for c in cms], BN)
        keys |= _keys('auxiliary_head.', ('convs.0.conv', ), ('weight', ))
        keys |= _keys('auxiliary_head.', ('convs.0.bn', ), BN)
        keys |= _keys('auxiliary_head.', ('conv_seg', ), CONV)
        keys |= _keys('decode_head.', ('conv_seg', ), CONV)
    else:  # FPNHead: level i has max(1, i) ConvModules, each + Upsample
        cms = ['0.0', '1.0', '2.0', '2.2', '3.0', '3.2', '3.4']
        keys |= _keys('decode_head.scale_heads.', [f'{c}.conv' for c in cms],
                      ('weight', ))
        keys |= _keys('decode_head.scale_heads.', [f'{c}.bn' for c in cms],
                      BN)
        keys |= _keys('decode_head.', ('conv_seg', ), CONV)
    return keys


@pytest.fixture(scope='module')
def setups(tmp_path_factory):
    """Per task: the tiny config file, its model (random weights) and the
    official-layout checkpoint file of that model."""
    root = tmp_path_factory.mktemp('dense_convert')
    data = dict(coco=make_coco(str(root / 'coco')) + '/',
                ade=make_ade(str(root / 'ade' / 'ADEChallengeData2016')))
    out = {}
    torch.set_num_threads(1)
    for i, (task, (config, dataset, *_)) in enumerate(TASKS.items()):
        cfg = tiny_dense_config(osp.join(REPO, config),
                                data_root=data[dataset])
        cfg_file = str(root / osp.basename(config))
        cfg.dump(cfg_file)
        model = randomize_(build_model_from_config(cfg), seed=i).eval()
        official = to_official(model.state_dict())
        src = str(root / f'{task}_official.pth')
        # an mmcv 1.x checkpoint: meta, state_dict, optimizer
        meta = dict(mmcv_version='1.3.0', epoch=36, config='...')
        if task.startswith('mask-rcnn'):
            meta['CLASSES'] = ('person', 'bicycle')
        torch.save(dict(meta=meta, state_dict=official,
                        optimizer=dict(state={}, param_groups=[])), src)
        out[task] = dict(cfg_file=cfg_file, model=model, official=official,
                         src=src, root=root)
    return out


@pytest.mark.parametrize('task', list(TASKS))
def test_official_layout_is_the_mmdet2_mmseg0_one(task, setups):
    """Our model seen through the official names has exactly the official
    adapter, FPN and head tensors: mmdet 3.3 / mmseg 1.2.2 kept the 2.x /
    0.x names of everything but the adapter."""
    official = setups[task]['official']
    rest = {k for k in official if not re.match(
        r'backbone\.(blocks|patch_embed|pos_embeder)\.', k)}
    assert rest == official_head_keys(task)


@pytest.mark.parametrize('task', list(TASKS))
def test_convert_bit_identical_then_test_py(task, setups, capsys):
    s = setups[task]
    dst = str(s['root'] / f'{task}_converted.pth')
    assert load_tool(TOOL).main([s['src'], dst, '--config',
                                 s['cfg_file']]) == 0
    printed = capsys.readouterr().out
    expected = s['model'].state_dict()
    n = len(expected)
    assert f'converted: {n} tensors' in printed
    assert 'missing: 0; unexpected: 0' in printed
    ckpt = torch.load(dst, weights_only=True)
    assert list(ckpt['state_dict']) == list(expected)
    for k, v in expected.items():
        assert torch.equal(ckpt['state_dict'][k], v), k
    assert ckpt['meta']['converted_from'] == osp.basename(s['src'])
    if task.startswith('mask-rcnn'):
        assert ckpt['meta']['dataset_meta'] == dict(classes=('person',
                                                             'bicycle'))
    if not TASKS[task][3]:
        return
    # tools/test.py in this process (its imports are paid already): the
    # real Runner, the task's metric and the strict CheckpointMatchHook,
    # which raises if any model tensor is missing or of another shape
    work = str(s['root'] / f'{task}_test')
    metrics = load_tool('tools/test.py').main([s['cfg_file'], dst,
                                              '--work-dir', work])
    assert TASKS[task][2] in metrics, metrics
    log = open(glob.glob(f'{work}/*/*.log')[0]).read()
    assert "type='xcit_mm.CheckpointMatchHook'" in log  # the config's


def test_mismatches_are_explained(setups):
    det, up, fpn = (setups[t] for t in TASKS)
    # Mask R-CNN weights for an UperNet config
    with pytest.raises(CheckpointMismatchError,
                       match=r'is a Mask R-CNN .* builds a UperNet'):
        convert_dense_checkpoint({'state_dict': det['official']},
                                 up['model'])
    # UperNet weights for a Semantic FPN config
    with pytest.raises(CheckpointMismatchError,
                       match=r'is a UperNet .* builds a Semantic FPN'):
        convert_dense_checkpoint({'state_dict': up['official']},
                                 fpn['model'])
    # the same task with another depth
    shallow = {k: v for k, v in up['official'].items()
               if not k.startswith('backbone.blocks.3.')}
    with pytest.raises(CheckpointMismatchError,
                       match=r'3 blocks, patch 16\) is not the config'):
        convert_dense_checkpoint({'state_dict': shallow}, up['model'])
    # one head tensor short
    short = dict(det['official'])
    del short['roi_head.mask_head.conv_logits.bias']
    with pytest.raises(CheckpointMismatchError,
                       match=r'1 missing .*conv_logits\.bias'):
        convert_dense_checkpoint({'state_dict': short}, det['model'])
    # an ImageNet classifier (official layout)
    cls = {k: v for k, v in up['official'].items()
           if k.startswith('backbone.') and 'fpn' not in k}
    cls = {k[len('backbone.'):]: v for k, v in cls.items()}
    cls.update({'cls_token': torch.zeros(1, 1, 32),
                'head.weight': torch.zeros(10, 32),
                'head.bias': torch.zeros(10)})
    with pytest.raises(CheckpointMismatchError,
                       match='XCiT ImageNet classifier or DINO backbone .*'
                       'not trained Mask R-CNN .*backbone_only=True') as e:
        convert_dense_checkpoint({'model': cls}, det['model'])
    assert e.value.remedy == 'convert-xcit'  # the tools print the command
    assert 'xcit2mm.py SRC DST [--backbone-only]' in explain_exception(
        e.value)
    # a --backbone-only file
    backbone = {k: v for k, v in up['model'].state_dict().items()
                if k.startswith('backbone.')}
    with pytest.raises(CheckpointMismatchError,
                       match='XCiT backbone only .*init_cfg.checkpoint to it'
                       ) as e:
        convert_dense_checkpoint({'state_dict': backbone}, up['model'])
    assert e.value.remedy is None
    # a classification model as the target
    with pytest.raises(ConfigError, match='not a detection / segmentation'):
        convert_dense_checkpoint({'state_dict': up['official']},
                                 XCiT(dict(embed_dims=32, depth=1,
                                           num_heads=2)))


def test_cli_reports_a_mismatch_in_one_paragraph(setups, capsys):
    det, up = setups['mask-rcnn-p8'], setups['upernet-p16']
    dst = str(up['root'] / 'wrong.pth')
    with pytest.raises(SystemExit) as exit_:
        load_tool(TOOL).main([det['src'], dst, '--config', up['cfg_file']])
    assert exit_.value.code == 1
    err = ' '.join(capsys.readouterr().err.split())  # (the CLI wraps it)
    assert 'Mask R-CNN' in err and 'UperNet' in err
    assert 'Traceback' not in err
    assert not osp.exists(dst)


def test_a_converted_file_converts_to_itself(setups):
    fpn = setups['sem-fpn-p16']
    own = fpn['model'].state_dict()
    again, report = convert_dense_checkpoint({'state_dict': own},
                                             fpn['model'])
    assert report['source_format'] == 'xcit_mm'
    assert list(again) == list(own)
    assert all(again[k] is own[k] for k in own)


@pytest.mark.parametrize('folder', ['mask_rcnn', 'upernet', 'sem_fpn'])
def test_readme_conversion_commands_as_tested(folder):
    """Each README shows the conversion that the tests above run (a real
    config, the tool's --config) and says nowhere that it is not there."""
    text = open(osp.join(REPO, 'configs', folder, 'README.md')).read()
    commands = re.findall(
        r'xcit2mm\.py (\S+) \\\s+(\S+) \\\s+--config (\S+)', text)
    assert commands, 'no xcit2mm.py ... --config command'
    for src, dst, config in commands:
        official = dict(mask_rcnn='maskrcnn').get(folder, folder)
        assert osp.basename(src).startswith(f'{official}_xcit_'), src
        assert osp.isfile(osp.join(REPO, config)), config
    flat = ' '.join(text.split())
    assert 'is not provided' not in flat and 'not supported' not in flat
