"""XCiTMultiScaleNeck: strides and channels, the official layout, errors,
registries and the SyncBN handling."""
import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.model import convert_sync_batchnorm, revert_sync_batchnorm
from mmseg.registry import MODELS as MMSEG_MODELS

from tests.utils import TINY_DENSE_BACKBONE
from xcit_mm.models import XCiT, XCiTMultiScaleNeck

C = TINY_DENSE_BACKBONE['arch']['embed_dims']


def expected_size(grid: int, patch: int, stride: int) -> int:
    """Side of the stride-`stride` map made from a `grid`-cell XCiT map:
    up-sampling is exact, max-pooling floors (as in the official code)."""
    if stride <= patch:
        return grid * patch // stride
    return grid // (stride // patch)


@pytest.mark.parametrize('patch', [16, 8])
@pytest.mark.parametrize('hw', [(97, 75), (64, 96), (33, 129)])
def test_strides_and_channels_at_odd_sizes(patch, hw):
    backbone = XCiT(out_type='featmap', patch_size=patch,
                    **TINY_DENSE_BACKBONE).eval()
    neck = XCiTMultiScaleNeck(C, patch_size=patch).eval()
    assert neck.out_channels == [C] * 4
    assert neck.strides == (4, 8, 16, 32)
    H, W = hw
    with torch.no_grad():
        feats = backbone(torch.randn(2, 3, H, W))
        outs = neck(feats)
    # the stem's stride-2 convs: grid = ceil(side / patch), no padding
    gh, gw = -(-H // patch), -(-W // patch)
    assert all(f.shape == (2, C, gh, gw) for f in feats)
    assert len(outs) == 4
    for out, stride, ch in zip(outs, neck.strides, neck.out_channels):
        assert out.shape == (2, ch, expected_size(gh, patch, stride),
                             expected_size(gw, patch, stride))


class OfficialAdapter(nn.Module):
    """The official backbone's fpn1..fpn4, written from the reference notes
    (BN in place of the hard-coded SyncBN)."""

    def __init__(self, dim: int, patch: int):
        super().__init__()
        up = lambda: nn.ConvTranspose2d(dim, dim, 2, 2)  # noqa: E731
        if patch == 16:
            self.fpn1 = nn.Sequential(up(), nn.BatchNorm2d(dim), nn.GELU(),
                                      up())
            self.fpn2 = nn.Sequential(up())
            self.fpn3 = nn.Identity()
            self.fpn4 = nn.MaxPool2d(2, 2)
        else:
            self.fpn1 = nn.Sequential(up())
            self.fpn2 = nn.Identity()
            self.fpn3 = nn.Sequential(nn.MaxPool2d(2, 2))
            self.fpn4 = nn.Sequential(nn.MaxPool2d(4, 4))

    def forward(self, xs):
        return [f(x) for f, x in zip(
            (self.fpn1, self.fpn2, self.fpn3, self.fpn4), xs)]


@pytest.mark.parametrize('patch', [16, 8])
def test_matches_official_adapter(patch):
    torch.manual_seed(0)
    ours = XCiTMultiScaleNeck(C, patch_size=patch)
    for m in ours.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    ref = OfficialAdapter(C, patch)
    # same parameter names as the official backbone's fpn1..fpn4
    ref.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), ref.eval()
    xs = [torch.randn(2, C, 6, 10) for _ in range(4)]  # 4 distinct maps
    with torch.no_grad():
        for a, b in zip(ours(xs), ref(xs)):
            torch.testing.assert_close(a, b)


def test_p16_has_norm_from_config_and_p8_has_none():
    p16 = XCiTMultiScaleNeck(C, 16, norm_cfg=dict(type='GN', num_groups=4))
    assert isinstance(p16.fpn1[1], nn.GroupNorm)
    p8 = XCiTMultiScaleNeck(C, 8)
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase)
                   for m in p8.modules())


def test_errors_name_the_problem():
    neck = XCiTMultiScaleNeck(C, 16)
    x = torch.randn(1, C, 4, 4)
    with pytest.raises(ValueError, match='needs 4 feature maps'):
        neck([x])
    with pytest.raises(ValueError, match='in_channels'):
        neck([torch.randn(1, C + 1, 4, 4)] * 4)
    with pytest.raises(ValueError, match='one size'):
        neck([x, x, x, torch.randn(1, C, 5, 4)])
    with pytest.raises(ValueError, match=r'one of \[8, 16\]'):
        XCiTMultiScaleNeck(C, 14)
    with pytest.raises(TypeError, match='embed_dims'):
        XCiTMultiScaleNeck([C] * 4)


@pytest.mark.parametrize('registry', [MMDET_MODELS, MMSEG_MODELS],
                         ids=['mmdet', 'mmseg'])
def test_scoped_name_and_neck_list_build_from_other_libraries(registry):
    neck = registry.build(
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=C,
             patch_size=8))
    assert isinstance(neck, XCiTMultiScaleNeck)
    # a list of necks (adapter, then the library's FPN) -> a Sequential
    chain = registry.build([
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=C,
             patch_size=16),
        dict(type=f'{registry.scope}.FPN', in_channels=[C] * 4,
             out_channels=16, num_outs=5),
    ])
    outs = chain.eval()([torch.randn(1, C, 4, 6)] * 4)
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 24), (8, 12), (4, 6),
                                                   (2, 3), (1, 2)]


def test_sync_bn_single_process_and_conversion():
    """SyncBN by config works in one process (torch uses plain BN while no
    process group exists; mmengine's Runner also reverts it), and the
    configs' `sync_bn='torch'` conversion reaches the neck's BN."""
    neck = XCiTMultiScaleNeck(C, 16, norm_cfg=dict(type='SyncBN'))
    assert isinstance(neck.fpn1[1], nn.SyncBatchNorm)
    xs = [torch.randn(2, C, 4, 4) for _ in range(4)]
    neck.train()(xs)[0].sum().backward()  # no process group: works
    reverted = revert_sync_batchnorm(neck)
    assert not any(isinstance(m, nn.SyncBatchNorm)
                   for m in reverted.modules())
    bn = XCiTMultiScaleNeck(C, 16)
    converted = convert_sync_batchnorm(bn, 'torch')
    assert isinstance(converted.fpn1[1], nn.SyncBatchNorm)
