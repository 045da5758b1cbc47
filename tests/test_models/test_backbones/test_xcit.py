"""XCiT backbone: exactness against timm (the official code), outputs,
freezing, errors."""
import pytest
import timm
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from tests.utils import (
    ARCHS,
    REPO,
    TINY_ARCH,
    randomize_,
    relative_error,
    timm_name,
)
from xcit_mm.models import XCiT
from xcit_mm.models.backbones import resolve_arch
from xcit_mm.models.backbones.xcit_convert import to_xcit_mm
from xcit_mm.utils.errors import ConfigError

PAIRS = [(a, stem, p) for a, stem in ARCHS for p in (16, 8)]
BASE_MODEL = f'{REPO}/configs/_base_/models/xcit-s12-p16.py'


def build_classifier(arch: str, patch: int, num_classes: int = 1000):
    """The classifier exactly as a config builds it (mmpretrain scope)."""
    cfg = Config.fromfile(BASE_MODEL).model
    cfg.backbone.update(arch=arch, patch_size=patch, drop_path_rate=0.)
    cfg.head.update(in_channels=resolve_arch(arch)['embed_dims'],
                    num_classes=num_classes)
    # _scope_: independent of a default scope left by an earlier Runner
    return MMPRETRAIN_MODELS.build(dict(cfg, _scope_='mmpretrain'))


def _converted_pair(stem, patch, arch, seed=0):
    ref = randomize_(timm.create_model(timm_name(stem, patch)), seed).eval()
    ours = build_classifier(arch, patch)
    backbone, head, fmt = to_xcit_mm(ref.state_dict())
    assert fmt == 'timm'
    ours.backbone.load_state_dict(backbone, strict=True)
    ours.head.load_state_dict(head, strict=True)
    return ref, ours.eval()


@pytest.mark.parametrize('arch,stem,patch', PAIRS,
                         ids=[f'{a}-p{p}' for a, _, p in PAIRS])
def test_logits_match_timm_small_input(arch, stem, patch):
    """Every size and patch: timm's weights load strictly and give the same
    logits. (At 224 px through the converter tool: test_xcit_convert.py;
    parameter counts equal timm's: tests/test_configs/test_configs.py.)"""
    ref, ours = _converted_pair(stem, patch, arch)
    x = torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref(x)
        got = ours(x, mode='tensor')
    assert relative_error(got, expected) <= 1e-5


def test_tokens_norm_matters():
    """nano has tokens_norm=False; the flag must change the output."""
    a = randomize_(XCiT('n12')).eval()
    b = XCiT(dict(embed_dims=128, depth=12, num_heads=4, tokens_norm=True))
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(a(x)[0], b.eval()(x)[0])


@pytest.mark.parametrize('patch', [16, 8])
@pytest.mark.parametrize('size', [(64, 64), (70, 93), (33, 47)])
def test_featmap_shapes_and_strides(patch, size):
    model = XCiT(TINY_ARCH, patch_size=patch, out_type='featmap',
                 out_indices=(0, -1)).eval()
    x = torch.randn(2, 3, *size)
    outs = model(x)
    assert len(outs) == 2
    # the stem's stride-2 convs give ceil(side / 2) each
    grid = (-(-size[0] // patch), -(-size[1] // patch))
    for o in outs:
        assert o.shape == (2, 32, *grid)
    assert model.get_attention_maps(x, layers=[0])['grid'] == grid
    assert not hasattr(model, 'cls_token')
    assert not hasattr(model, 'cls_attn_blocks')


def test_raw_and_default_out_indices():
    model = XCiT('s12', out_type='featmap')
    assert model.out_indices == [3, 5, 7, 11]
    assert XCiT('t24', out_type='featmap').out_indices == [7, 11, 15, 23]
    raw = XCiT(TINY_ARCH, out_type='raw', out_indices=[-1]).eval()
    (tokens, ) = raw(torch.randn(1, 3, 32, 48))
    assert tokens.shape == (1, 2 * 3, 32)


def test_cls_output():
    model = XCiT(TINY_ARCH).eval()
    outs = model(torch.randn(3, 3, 32, 32))
    assert len(outs) == 1 and outs[0].shape == (3, 32)


def test_aliases_and_errors():
    assert XCiT('s12').arch_settings == XCiT('small-12').arch_settings
    with pytest.raises(KeyError, match='Valid archs.*nano-12'):
        XCiT('small-13')
    with pytest.raises(KeyError, match='num_heads'):
        XCiT(dict(embed_dims=32, depth=2))
    with pytest.raises(ConfigError,
                       match=r'patch_size must be one of \[8, 16\]'):
        XCiT('n12', patch_size=14)
    with pytest.raises(ValueError, match='out_type'):
        XCiT('n12', out_type='logits')
    with pytest.raises(ConfigError, match='out of range'):
        XCiT(TINY_ARCH, out_indices=[5])
    model = XCiT(TINY_ARCH)
    with pytest.raises(ValueError, match='in_channels=1'):
        model(torch.randn(1, 1, 32, 32))
    # no minimum size: the official stem takes an 8x32 image to a 1x2 grid
    assert XCiT(TINY_ARCH, out_type='raw', out_indices=[0]).eval()(
        torch.randn(1, 3, 8, 32))[0].shape == (1, 2, 32)


def test_frozen_stages():
    model = XCiT(dict(TINY_ARCH, depth=3), out_type='featmap',
                 out_indices=[2], frozen_stages=2)
    model.train()
    for m in (model.patch_embed, model.pos_embed, *model.blocks[:2]):
        assert all(not p.requires_grad for p in m.parameters())
        assert all(not b.training for b in m.modules()
                   if isinstance(b, torch.nn.BatchNorm2d))
    assert all(p.requires_grad for p in model.blocks[2].parameters())
    assert model.blocks[2].local_mp.bn.training
    model(torch.randn(2, 3, 32, 32))[0].sum().backward()
    assert model.blocks[0].attn.qkv.weight.grad is None
    assert model.blocks[2].attn.qkv.weight.grad is not None


@pytest.mark.parametrize('patch', [16, 8])
def test_every_param_gets_grad_dense(patch):
    model = XCiT(TINY_ARCH, patch_size=patch, out_type='featmap',
                 out_indices=[0, 1], drop_path_rate=0.1).train()
    sum(o.mean() for o in model(torch.randn(2, 3, 40, 56))).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == []


def test_grad_checkpointing_same_grads():
    torch.manual_seed(0)
    plain = randomize_(XCiT(TINY_ARCH))
    cp = XCiT(TINY_ARCH, with_cp=True)
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    plain(x)[0].sum().backward()
    cp(x)[0].sum().backward()
    for (n, a), b in zip(plain.named_parameters(), cp.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=n)


def test_syncbn_from_config():
    model = XCiT(TINY_ARCH, norm_cfg=dict(type='SyncBN'))
    assert isinstance(model.blocks[0].local_mp.bn, torch.nn.SyncBatchNorm)


def test_official_init():
    model = XCiT(TINY_ARCH)
    model.init_weights()
    w = model.blocks[0].attn.qkv.weight
    assert 0.015 < w.std().item() < 0.025  # trunc-normal std 0.02
    assert torch.all(model.blocks[0].attn.qkv.bias == 0)
    assert torch.all(model.blocks[0].attn.temperature == 1)


def test_no_decay_names():
    names = [n for n, _ in XCiT(TINY_ARCH).named_parameters()]
    assert 'blocks.0.attn.temperature' in names
    assert 'cls_token' in names
    assert {'blocks.0.gamma1', 'blocks.0.gamma2', 'blocks.0.gamma3'} <= set(
        names)


def test_scoped_name_builds_from_other_libraries():
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmseg.registry import MODELS as MMSEG_MODELS
    for registry in (MMDET_MODELS, MMSEG_MODELS, MMPRETRAIN_MODELS):
        model = registry.build(
            dict(type='xcit_mm.XCiT', arch=TINY_ARCH, out_type='featmap',
                 out_indices=[1]))
        assert isinstance(model, XCiT)
