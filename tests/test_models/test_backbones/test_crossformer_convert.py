"""CrossFormer conversion: official classification files of both code
branches and official detection checkpoints, built here in their key
layouts, convert with a strict check; errors name what is wrong."""
import sys
import textwrap

import pytest
import torch

from xcit_mm.models import CrossFormer
from xcit_mm.models.backbones.crossformer_convert import (
    convert_checkpoint,
    load_official,
)
from xcit_mm.models.layers import DynamicPosBias
from xcit_mm.utils.errors import CheckpointMismatchError

V1 = dict(embed_dims=32, depths=(1, 2, 2, 1), num_heads=(1, 2, 4, 8))
PP = dict(V1, depths=(1, 1, 4, 1), group_size=(4, 4, 14, 7),
          interval=(4, 2, 1, 1), acl=True)


def official_classifier(arch, branch, num_classes=10, seed=0):
    """The state dict an official classifier saves: backbone keys as ours,
    ``head.*``, and on the ``crossformer`` branch the DPB buffers."""
    torch.manual_seed(seed)
    model = CrossFormer(arch)
    sd = dict(model.state_dict())
    C = model.stage_channels[-1]
    sd['head.weight'] = torch.randn(num_classes, C)
    sd['head.bias'] = torch.randn(num_classes)
    if branch == 'crossformer':
        for i, stage in enumerate(model.layers):
            G = 7 if i < 3 else 1  # group size at 224 px (stage 4: 7x7 map)
            for j in range(len(stage.blocks)):
                p = f'layers.{i}.blocks.{j}.attn.'
                sd[p + 'biases'] = DynamicPosBias.offsets(G, G)
                sd[p + 'relative_position_index'] = \
                    DynamicPosBias.relative_index(G, G)
    return sd


@pytest.fixture
def fake_yacs(tmp_path, monkeypatch):
    """A stand-in ``yacs.config.CfgNode`` (a dict subclass with instance
    state, like yacs') to pickle the official ``config`` entry with."""
    pkg = tmp_path / 'yacs'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'config.py').write_text(textwrap.dedent("""
        class CfgNode(dict):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.__dict__['__immutable__'] = False
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    from yacs.config import CfgNode
    yield CfgNode
    for name in ('yacs', 'yacs.config'):
        sys.modules.pop(name, None)


def save_official(path, sd, cfg_node):
    config = cfg_node(MODEL=cfg_node(TYPE='cross-scale', NAME='tiny'))
    torch.save(dict(model=sd, optimizer=dict(state={}, param_groups=[]),
                    lr_scheduler=dict(last_epoch=3), max_accuracy=0.5,
                    epoch=3, config=config), path)


@pytest.mark.parametrize('arch,branch', [(V1, 'crossformer'), (PP, 'main')])
def test_official_classifier_converts_and_loads(tmp_path, fake_yacs, arch,
                                                branch):
    sd = official_classifier(arch, branch)
    path = str(tmp_path / 'official.pth')
    save_official(path, sd, fake_yacs)
    sys.modules.pop('yacs.config', None)  # reading must not need yacs
    state_dict, report = convert_checkpoint(load_official(path))
    n_buffers = sum(k.endswith(('.biases', '_index')) for k in sd)
    assert report['buffers_checked_and_dropped'] == n_buffers
    assert (n_buffers > 0) == (branch == 'crossformer')
    assert report['head_tensors'] == 2 and report['num_classes'] == 10
    # loads strictly into the classifier a config builds
    from mmpretrain.registry import MODELS
    clf = MODELS.build(dict(
        type='ImageClassifier', _scope_='mmpretrain',
        backbone=dict(type='xcit_mm.CrossFormer', arch=arch),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=256)))
    clf.load_state_dict(state_dict, strict=True)
    assert torch.equal(clf.head.fc.weight, sd['head.weight'])


def test_official_detection_backbone(tmp_path):
    """An mmdet 2.x checkpoint: backbone (no final norm) + neck + heads."""
    model = CrossFormer(V1, out_indices=(0, 1, 2, 3), final_norm=False)
    sd = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    sd['neck.lateral_convs.0.conv.weight'] = torch.zeros(256, 32, 1, 1)
    sd['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(81, 1024)
    ckpt = dict(state_dict=sd, meta=dict(epoch=12))
    state_dict, report = convert_checkpoint(ckpt)
    assert report['source_format'] == 'official_dense'
    assert set(state_dict) == {f'backbone.{k}' for k in model.state_dict()}
    # and the file loads through init_cfg into a dense backbone
    path = str(tmp_path / 'det.pth')
    torch.save(ckpt, path)
    dense = CrossFormer(V1, out_indices=(0, 1, 2, 3), final_norm=False,
                        init_cfg=dict(type='Pretrained', checkpoint=path,
                                      prefix='backbone.'))
    dense.init_weights()
    for k, v in dense.state_dict().items():
        assert torch.equal(v, sd[f'backbone.{k}']), k


def test_backbone_only_and_classifier_into_dense(tmp_path):
    sd = official_classifier(V1, 'main')
    state_dict, report = convert_checkpoint(dict(model=sd),
                                            backbone_only=True)
    assert report['dropped_for_backbone_only'] == 4  # norm.w/b, head.w/b
    assert not any(k.startswith(('backbone.norm.', 'head.'))
                   for k in state_dict)
    path = str(tmp_path / 'cls.pth')
    torch.save(dict(model=sd), path)
    dense = CrossFormer(V1, out_indices=(0, 1, 2, 3), final_norm=False)
    counts = dense.load_pretrained(path)
    assert counts['skipped_classification_only'] == 4
    assert counts['loaded'] == len(dense.state_dict())


def test_mismatches_raise(tmp_path):
    sd = official_classifier(V1, 'crossformer')
    broken = dict(sd)
    broken.pop('layers.1.blocks.1.mlp.fc1.weight')
    with pytest.raises(CheckpointMismatchError, match='1 missing'):
        convert_checkpoint(dict(model=broken))
    wrong = dict(sd)
    wrong['layers.0.blocks.0.attn.biases'] = torch.zeros(169, 2)
    with pytest.raises(CheckpointMismatchError, match='position buffers'):
        convert_checkpoint(dict(model=wrong))
    with pytest.raises(CheckpointMismatchError, match='not a CrossFormer'):
        convert_checkpoint(dict(model={'blocks.0.weight': torch.zeros(1)}))
    path = str(tmp_path / 'cls.pth')
    torch.save(dict(model=sd), path)
    other = CrossFormer(dict(V1, depths=(1, 1, 2, 1)))
    with pytest.raises(CheckpointMismatchError, match='unexpected'):
        other.load_pretrained(path)


def test_cli(tmp_path, capsys):
    sys.path.insert(0, 'tools/model_converters')
    try:
        from crossformer2mm import main
    finally:
        sys.path.pop(0)
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'out' / 'dst.pth')
    torch.save(dict(model=official_classifier(PP, 'main')), src)
    assert main([src, dst]) == 0
    out = capsys.readouterr().out
    assert 'source format: official' in out and 'unexpected: 0' in out
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['head_tensors'] == 2
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / 'missing.pth'), dst])
    assert exit_info.value.code == 1
    assert 'missing.pth' in capsys.readouterr().err
