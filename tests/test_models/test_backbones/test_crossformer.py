"""CrossFormer backbone: published sizes and FLOPs, LSDA against a direct
masked attention, DPB offsets, padding, outputs, freezing, errors."""
import pytest
import torch
import torch.nn as nn

from xcit_mm.models import CrossFormer
from xcit_mm.models.backbones.crossformer import resolve_arch
from xcit_mm.models.layers import CrossFormerBlock, DynamicPosBias
from xcit_mm.registry import MODELS
from xcit_mm.utils.errors import ArchError, ConfigError, InputShapeError

#: Published classifier sizes (M parameters, 1000 classes) and GFLOPs at 224
#: px (official README). The FLOPs of CrossFormer-S are checked through
#: tools/analysis_tools/get_flops.py (tests/test_tools).
PUBLISHED = {
    'tiny': (27.8, 2.9), 'small': (30.7, 4.9), 'base': (52.0, 9.2),
    'large': (92.0, 16.1), 'pp-small': (23.3, None), 'pp-base': (52.0, 9.5),
    'pp-large': (92.0, 16.6), 'pp-huge': (96.0, 21.8)
}
#: A tiny arch with every feature: LDA, padding, CrossFormer++'s ACL.
TINY = dict(embed_dims=32, depths=(1, 2, 4, 1), num_heads=(1, 2, 2, 4),
            group_size=(3, 3, 3, 2), interval=(4, 2, 2, 1), acl=True)


class Classifier(nn.Module):
    """The official classifier: backbone, final norm, token mean, linear."""

    def __init__(self, arch):
        super().__init__()
        self.backbone = CrossFormer(arch)
        self.head = nn.Linear(self.backbone.stage_channels[-1], 1000)

    def forward(self, x):
        return self.head(self.backbone(x)[0].mean((2, 3)))


def randomized(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize('arch', list(PUBLISHED))
def test_param_count_equals_published(arch):
    with torch.device('meta'):
        model = Classifier(arch)
    n = sum(p.numel() for p in model.parameters())
    assert round(n / 1e6, 1) == PUBLISHED[arch][0]


def test_arch_settings():
    s = resolve_arch('pp-h')
    assert s['depths'] == (6, 6, 18, 2) and s['group_size'] == (4, 4, 14, 7)
    assert s['interval'] == (4, 2, 1, 1) and s['acl']
    model = CrossFormer('pp-small')
    acl = [(i, j) for i, st in enumerate(model.layers)
           for j, b in enumerate(st.blocks) if b.acl]
    # every 3rd block but a stage's last: 5 in the 18-block stage
    assert acl == [(2, 2), (2, 5), (2, 8), (2, 11), (2, 14)]
    assert [b.lda for b in model.layers[2].blocks[:4]] == [0, 1, 0, 1]


def direct_lsda(block, x):
    """LSDA as masked full attention over all H x W tokens: a pair attends
    only inside its group, with the DPB of its in-group offset."""
    B, H, W, C = x.shape
    gh, gw, I = block.layout(H, W)
    attn = block.attn
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    group = torch.stack([ys // (gh * I), xs // (gw * I), ys % I, xs % I], 1)
    pos = torch.stack([(ys % (gh * I)) // I, (xs % (gw * I)) // I], 1)
    same = (group[:, None] == group[None]).all(-1)  # (HW, HW)
    offset = (pos[:, None] - pos[None]).float()  # query minus key
    bias = attn.pos.mlp(offset).permute(2, 0, 1)  # (heads, HW, HW)
    h = attn.num_heads
    qkv = attn.qkv(x.reshape(B, H * W, C)).reshape(B, H * W, 3, h, C // h)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-2, -1) * attn.scale + bias
    logits = logits.masked_fill(~same, float('-inf'))
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, H * W, C)
    return attn.proj(out).reshape(B, H, W, C)


@pytest.mark.parametrize(
    'lda,mode,hw,expect',
    [
        (False, 'group', (10, 13), (4, 4, 1)),  # SDA, padded
        (True, 'group', (10, 13), (4, 4, 2)),  # LDA, G x G groups, padded
        (True, 'group', (16, 8), (4, 4, 2)),  # LDA, no padding
        (True, 'interval', (9, 13), (5, 7, 2)),  # LDA over the whole map
        (True, 'group', (3, 9), (9, 9, 1)),  # short side <= G: one group
        (True, 'interval', (3, 9), (3, 3, 1)),  # ... G' = short side
    ])
def test_lsda_equals_direct_masked_attention(lda, mode, hw, expect):
    torch.manual_seed(0)
    block = randomized(CrossFormerBlock(16, 2, 4, 2, lda, mode)).eval()
    x = torch.randn(2, *hw, 16)
    assert block.layout(*hw) == expect
    with torch.no_grad():
        got = block.attention(x)
        expected = direct_lsda(block, x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_dpb_offsets():
    gh, gw = 3, 4
    offsets = DynamicPosBias.offsets(gh, gw)
    index = DynamicPosBias.relative_index(gh, gw)
    assert offsets.shape == ((2 * gh - 1) * (2 * gw - 1), 2)
    coords = torch.tensor([(y, x) for y in range(gh) for x in range(gw)])
    expected = (coords[:, None] - coords[None]).float()  # query minus key
    assert torch.equal(offsets[index], expected)
    dpb = randomized(DynamicPosBias(4, 3))
    with torch.no_grad():
        torch.testing.assert_close(dpb(gh, gw),
                                   dpb.mlp(expected).permute(2, 0, 1))


def test_padded_group_equals_its_tokens_alone():
    """A group that needs padding gives what its real tokens give alone."""
    torch.manual_seed(0)
    block = randomized(CrossFormerBlock(16, 2, 4, 2, False)).eval()
    x = torch.randn(1, 6, 8, 16)  # SDA 4 x 4, lower groups: 2 x 4 real
    with torch.no_grad():
        full = block.attention(x)
        alone = block.attention(x[:, 4:, :4])  # 2 x 4: one padded group
    assert block.layout(6, 8) == block.layout(2, 4) == (4, 4, 1)
    torch.testing.assert_close(full[:, 4:, :4], alone)


def test_any_input_size_and_outputs():
    model = randomized(
        CrossFormer(TINY, out_indices=(0, 1, -1), final_norm=False)).eval()
    assert model.out_indices == [0, 1, 3] and model.out_channels == [32, 64,
                                                                     256]
    x = torch.randn(2, 3, 70, 45)  # 18 x 12 -> 9 x 6 -> 5 x 3 -> 3 x 2
    with torch.no_grad():
        outs = model(x)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 18, 12), (2, 64, 9, 6),
                                              (2, 256, 3, 2)]
    assert all(torch.isfinite(o).all() for o in outs)
    # images in a batch do not see each other
    with torch.no_grad():
        single = model(x[1:])
    for a, b in zip(outs, single):
        assert ((a[1:] - b).norm() / b.norm()).item() < 1e-5


def test_lda_modes_coincide_when_maps_are_group_times_interval():
    arch = dict(TINY, group_size=(4, 4, 4, 4), interval=(4, 2, 1, 1))
    a = randomized(CrossFormer(arch, lda_mode='group')).eval()
    b = CrossFormer(arch, lda_mode='interval').eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)  # stage maps 16 = 4 x 4, 8 = 4 x 2
        torch.testing.assert_close(a(x)[0], b(x)[0])
        x = torch.randn(1, 3, 96, 96)  # 24 x 24: the layouts differ
        assert not torch.allclose(a(x)[0], b(x)[0])


def test_attention_maps():
    model = CrossFormer(TINY).eval()
    maps = model.get_attention_maps(torch.randn(1, 3, 40, 40))
    assert len(maps) == sum(TINY['depths'])
    stage0 = maps[(0, 0)]  # 10 x 10 map, SDA 3 x 3 groups: padded to 12
    assert stage0['layout'] == (3, 3, 1) and stage0['grid'] == (10, 10)
    assert stage0['weights'].shape == (16, 1, 9, 9)
    torch.testing.assert_close(stage0['weights'].sum(-1),
                               torch.ones(16, 1, 9))


def test_registry_classification_output_and_with_cp():
    model = MODELS.build(dict(type='xcit_mm.CrossFormer', arch=TINY))
    assert isinstance(model, CrossFormer) and hasattr(model, 'norm')
    model.init_weights()
    cp = CrossFormer(TINY, with_cp=True)
    cp.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    (a, ), (b, ) = model(x), cp(x)
    assert a.shape == (2, 256, 1, 1)
    torch.testing.assert_close(a, b)
    a.sum().backward()
    b.sum().backward()
    for (name, p), q in zip(model.named_parameters(), cp.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_frozen_stages():
    model = CrossFormer(TINY, frozen_stages=2, out_indices=(0, 1, 2, 3))
    model.train()
    frozen = [model.patch_embed, model.layers[0], model.layers[1]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(not m.training for f in frozen for m in f.modules())
    assert all(p.requires_grad for p in model.layers[2].parameters())
    assert model.layers[2].training and model.norm.weight.requires_grad
    model = CrossFormer(TINY, frozen_stages=4)
    assert not any(p.requires_grad for p in model.parameters())


def test_clear_errors():
    with pytest.raises(ArchError, match=r"Did you mean .*'small'"):
        CrossFormer('smal')
    with pytest.raises(ArchError, match='needs the keys'):
        CrossFormer(dict(embed_dims=32, depths=(1, 1, 1, 1)))
    with pytest.raises(ArchError, match='Unknown keys'):
        CrossFormer(dict(TINY, window=7))
    with pytest.raises(ConfigError, match='multiple of 16'):
        CrossFormer(dict(TINY, embed_dims=40))
    with pytest.raises(ConfigError, match='not divisible'):
        CrossFormer(dict(TINY, num_heads=(3, 2, 2, 4)))
    with pytest.raises(ConfigError, match='out of range'):
        CrossFormer(TINY, out_indices=(4, ))
    with pytest.raises(ConfigError, match='lda_mode'):
        CrossFormer(TINY, lda_mode='global')
    model = CrossFormer(TINY)
    with pytest.raises(InputShapeError, match='in_channels=1'):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(InputShapeError, match='at least 4x4'):
        model(torch.randn(1, 3, 3, 32))


def test_missing_pretrained_file_names_the_crossformer_converter(tmp_path):
    from xcit_mm.cli import explain_exception
    from xcit_mm.utils.errors import MissingFileError
    with pytest.raises(MissingFileError,
                       match='crossformer_convert.convert_checkpoint') as e:
        CrossFormer(TINY, init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / 'no.pth'))
        ).init_weights()
    assert 'tools/' not in str(e.value)
    assert e.value.remedy == 'convert-crossformer'
    cli = explain_exception(e.value)
    assert 'tools/model_converters/crossformer2mm.py SRC DST' in cli
    assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in cli
