"""xcit_mm's CrossFormer against the official code's outputs.

The fixtures (``tests/data/golden/crossformer*.npz``) were written by
``tools/misc/official_golden.py crossformer`` from cheerss/CrossFormer
(both branches, commits in each file's meta): seeded official weights
(small widths, the official group / interval layouts), the official
classifiers' logits at 224 x 224 and the official dense backbones' stage
outputs at 224 x 224 and 96 x 160 (which pads inside the attention). Here
the official state dict goes through xcit_mm's converter, and xcit_mm's
CrossFormer must give the same outputs within 1e-4 relative.
"""
import re

import pytest
import torch
import torch.nn.functional as F

from tests.utils.golden import assert_golden, load_golden
from xcit_mm.models import CrossFormer
from xcit_mm.models.backbones.crossformer_convert import convert_checkpoint

FIXTURES = ('crossformer-s', 'crossformer-pp-s')


def _cases():
    for name in FIXTURES:
        meta = load_golden(name)[3]
        for out in meta['classifiers']:
            yield pytest.param(name, 'cls', out, id=f'{name}-{out}')
        for case in meta['dense']:
            yield pytest.param(name, 'dense', case, id=f'{name}-{case}')


def _arch(meta, depths, group_size, interval, acl):
    return dict(embed_dims=meta['embed_dim'], depths=depths,
                num_heads=meta['num_heads'], group_size=group_size,
                interval=interval, acl=acl, mlp_ratio=meta['mlp_ratio'])


def _subset(params, depths):
    """The official weights of a model with fewer blocks per stage."""
    def keep(key):
        m = re.match(r'layers\.(\d+)\.blocks\.(\d+)\.', key)
        return not m or int(m.group(2)) < depths[int(m.group(1))]
    return {k: v for k, v in params.items() if keep(k)}


@pytest.mark.parametrize('name,kind,case', list(_cases()))
def test_crossformer_matches_the_official_code(name, kind, case):
    params, inputs, outputs, meta = load_golden(name)
    params = {k: v.float() if v.dtype == torch.float16 else v
              for k, v in params.items()}
    if kind == 'cls':
        c = meta['classifiers'][case]
        arch = _arch(meta, c['depths'], c['group_size'], c['crs_interval'],
                     c['acl'])
        state_dict, _ = convert_checkpoint(
            {'model': _subset(params, c['depths'])})
        model = CrossFormer(arch, out_indices=3, final_norm=True)
        model.load_state_dict({k[9:]: v for k, v in state_dict.items()
                               if k.startswith('backbone.')})
        x = inputs['224x224'].float()
        with torch.no_grad():
            feat = model.eval()(x)[0].mean((2, 3))
            logits = F.linear(feat, state_dict['head.fc.weight'],
                              state_dict['head.fc.bias'])
        assert_golden(logits, outputs[f'{case}.224x224'], what=case)
        return
    d = meta['dense'][case]
    c = next(iter(meta['classifiers'].values()))  # the weights' own arch
    arch = _arch(meta, c['depths'], d['group_size'], d['crs_interval'],
                 c['acl'])
    state_dict, _ = convert_checkpoint({'model': params}, backbone_only=True)
    model = CrossFormer(arch, out_indices=(0, 1, 2, 3), final_norm=False,
                        lda_mode=d['lda_mode'])
    model.load_state_dict({k[9:]: v for k, v in state_dict.items()})
    with torch.no_grad():
        feats = model.eval()(inputs[d['size']].float())
    for s in d['stages']:
        assert_golden(feats[s], outputs[f'{case}.{s}'],
                      what=f'{case} stage {s}')
