"""Golden outputs of the official CrossFormer code (cheerss/CrossFormer).

``--repo`` is a git checkout of the repository at :data:`COMMIT` (branch
``main``: CrossFormer++ and its dense code); the code of the ``crossformer``
branch (the original code, which produced the released classifiers and the
published detection / segmentation figures) is read from the same checkout
at :data:`ORIGINAL_COMMIT` with ``git archive``. The official modules are
imported from there at run time; their mmcv / mmdet / mmseg 1.x imports
(logging and checkpoint helpers that the forward pass never calls) are
served by stand-in modules that exist only while they are imported.

Fixtures (small widths: embed dim 16, mlp ratio 2, fewer blocks; the group
and interval layouts are the official ones), seeded random weights, one
image per size (values on a 1/16 grid, stored as float16, exact):

- ``crossformer-t``: the original classifier, CrossFormer-T layout
  (1 block in stages 1-2: SDA only), logits at 224 x 224;
- ``crossformer-s``: the original classifier, CrossFormer-S layout (SDA and
  LDA in every stage), logits at 224 x 224; with the same weights the two
  official dense backbones, as the official dense configs load them (the
  classifier file, ``strict=False``): the ``crossformer`` branch's
  (``lda_mode='interval'``) with G 7 / I 8 at 224 x 224 and 96 x 160, and
  with G 14 / I 16 (Semantic FPN-S / L) at 96 x 160 (its LDA pads there); the
  ``main`` branch's (``lda_mode='group'``) with G 7 / I 8 at 96 x 160;
- ``crossformer-pp-s``: the ``main`` classifier, CrossFormer++-S layout
  (G 4, 4, 14, 7, I 4, 2, 1, 1, a cooling layer in stage 3), logits at
  224 x 224, and the ``main`` dense backbone (``use_acl=True``) at
  224 x 224 and 96 x 160.

Every size that is not the classifier's pads inside the attention (96 x
160: stage 1 is 24 x 40, not a multiple of 7 or of G I = 56; stages 3-4 are
at most G on their short side). Dense outputs are ``output.<case>.<stage>``;
at 224 x 224 stage 0 (16 x 56 x 56) is left out to keep the files small:
any error there reaches stage 1. Each official model is built afresh for
each input: the official dense blocks overwrite their own settings the
first time they meet a small map.
"""
import contextlib
import importlib.util
import os.path as osp
import subprocess
import sys
import tarfile
import tempfile
import types

import torch

REPOSITORY = 'cheerss/CrossFormer'
#: ``main`` (CrossFormer++, dense code with the ``group`` LDA layout).
COMMIT = '795201075f0066e78408882617312084e25aef61'
#: ``crossformer`` (the original code, ``interval`` LDA layout).
ORIGINAL_COMMIT = '4fbf7501d6923f2564e8cb6d08a2d0138fc24a16'

DIM = 16
MLP_RATIO = 2.
HEADS = [1, 2, 4, 8]
CLASSES = 10
SIZES = {'224x224': (224, 224), '96x160': (96, 160)}
#: One weight set per fixture; ``cls`` lists the classifiers run on it:
#: (output name, branch, depths). CrossFormer-T's layout (1 block in
#: stages 1-2) takes the S weights without the second block of stages 1-2.
FIXTURES = {
    'crossformer-s': dict(
        depths=[2, 2, 2, 1], group_size=[7, 7, 7, 7],
        crs_interval=[8, 4, 2, 1], acl=False,
        cls=[('cls_s', [2, 2, 2, 1]), ('cls_t', [1, 1, 2, 1])]),
    'crossformer-pp-s': dict(
        depths=[2, 2, 4, 1], group_size=[4, 4, 14, 7],
        crs_interval=[4, 2, 1, 1], acl=True,
        cls=[('cls_pp_s', [2, 2, 4, 1])]),
}
#: Dense cases: (fixture, case name, branch, group_size, interval, size).
DENSE = [
    ('crossformer-s', 'interval_g7.224x224', 'original', [7] * 4,
     [8, 4, 2, 1], '224x224'),
    ('crossformer-s', 'interval_g7.96x160', 'original', [7] * 4,
     [8, 4, 2, 1], '96x160'),
    ('crossformer-s', 'interval_g14.96x160', 'original', [14, 14, 7, 7],
     [16, 8, 2, 1], '96x160'),
    ('crossformer-s', 'group_g7.96x160', 'main', [7] * 4, [8, 4, 2, 1],
     '96x160'),
    ('crossformer-pp-s', 'group_pp.224x224', 'main', [4, 4, 14, 7],
     [4, 2, 1, 1], '224x224'),
    ('crossformer-pp-s', 'group_pp.96x160', 'main', [4, 4, 14, 7],
     [4, 2, 1, 1], '96x160'),
]
#: Dense stages stored per size (the larger maps are left out to keep the
#: files small; an error in a stage reaches every later one).
STAGES = {'224x224': (2, 3), '96x160': (1, 2, 3)}


@contextlib.contextmanager
def _legacy_openmmlab():
    """Stand-ins for the mmcv / mmdet / mmseg 1.x names the official dense
    modules import (loggers, checkpoint loaders, init helpers); none of them
    runs in a forward pass. The real modules are back afterwards."""
    import logging

    def unused(*args, **kwargs):
        raise RuntimeError('not used by the golden forward pass')

    names = {
        'mmcv': {}, 'mmcv.cnn.bricks': {},
        'mmcv.runner': dict(load_checkpoint=unused, BaseModule=torch.nn.Module,
                            ModuleList=torch.nn.ModuleList,
                            _load_checkpoint=unused),
        'mmcv.cnn': dict(build_norm_layer=unused, constant_init=unused,
                         trunc_normal_init=unused),
        'mmcv.cnn.bricks.transformer': dict(FFN=unused, build_dropout=unused),
        'mmcv.cnn.utils': {},
        'mmcv.cnn.utils.weight_init': dict(trunc_normal_=unused),
        'mmdet': {}, 'mmseg': {},
        'mmdet.utils': dict(get_root_logger=logging.getLogger),
        'mmseg.utils': dict(get_root_logger=logging.getLogger),
    }
    saved = {k: v for k, v in sys.modules.items()
             if k.split('.')[0] in ('mmcv', 'mmdet', 'mmseg')}
    for k in saved:
        del sys.modules[k]
    for name, attrs in names.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _original_tree(repo, out):
    """The ``models/`` folder of the ``crossformer`` branch, into ``out``."""
    archive = osp.join(out, 'original.tar')
    subprocess.run(['git', '-C', repo, 'archive', '-o', archive,
                    ORIGINAL_COMMIT, 'models'], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(out)
    return osp.join(out, 'models')


def _image(seed, hw):
    """A seeded image of 2 x 2 blocks (small files), values on a 1/16
    grid in [-2, 2] (exact in float16)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, hw[0] // 2, hw[1] // 2, generator=g).clamp(-2, 2)
    x = x.repeat_interleave(2, 2).repeat_interleave(2, 3)
    return (x * 16).round() / 16


def _randomize(model, seed):
    """Seeded weights with O(1) spread (LayerNorm affines included), so
    every layer changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # quarter steps: few distinct values, so the files compress
            noise = (torch.randn(p.shape, generator=g) * 4).round() / 4
            if p.dim() > 1:  # linear and conv weights
                p.copy_(noise / p[0].numel()**0.5)
            elif name.endswith('weight'):  # LayerNorm scales
                p.copy_(1 + 0.2 * noise)
            else:
                p.copy_(0.2 * noise)
    return model.eval()


def _half(t):
    return t.detach().to(torch.float16)


def generate(repo, out_dir, write_golden):
    import os
    os.makedirs(out_dir, exist_ok=True)
    sys.path.insert(0, repo)  # the official modules import `models.*`
    tmp = tempfile.mkdtemp()
    try:
        original = _original_tree(repo, tmp)
        with _legacy_openmmlab():
            mods = dict(
                cls_original=_import(osp.join(original, 'crossformer.py'),
                                     'official_cls_original'),
                cls_main=_import(osp.join(repo, 'models', 'crossformer.py'),
                                 'official_cls_main'),
                dense_original=_import(
                    osp.join(original, 'crossformer_backbone.py'),
                    'official_dense_original'),
                dense_main=_import(
                    osp.join(repo, 'models', 'crossformer_backbone_seg.py'),
                    'official_dense_main'))
        return _write(mods, out_dir, write_golden)
    finally:
        sys.path.remove(repo)


def _common(depths):
    return dict(patch_size=[4, 8, 16, 32], in_chans=3, embed_dim=DIM,
                depths=depths, num_heads=HEADS, qkv_bias=True, qk_scale=None,
                drop_rate=0., drop_path_rate=0., patch_norm=True,
                use_checkpoint=False, merge_size=[[2, 4]] * 3)


def _classifier(mods, arch, depths):
    kwargs = dict(_common(depths), img_size=224, num_classes=CLASSES,
                  group_size=arch['group_size'])
    if arch['acl']:  # CrossFormer++: the main branch's classifier
        kwargs.update(crs_interval=arch['crs_interval'], use_acl=True,
                      mlp_ratio=[MLP_RATIO] * 4, group_type='constant',
                      use_cpe=False, pad_type=0, no_mask=False,
                      adaptive_interval=False, ape=False)
        return mods['cls_main'].CrossFormer(**kwargs), 'main', kwargs
    # the original classifier (its LDA interval is H / G)
    kwargs.update(mlp_ratio=MLP_RATIO)
    return mods['cls_original'].CrossFormer(**kwargs), 'crossformer', kwargs


def _stored(name, t):
    """Weights and biases are stored as float16 (exact: they are drawn
    there); buffers as they are."""
    return t.is_floating_point() and name.split('.')[-1] in ('weight', 'bias')


def _write(mods, out_dir, write_golden):
    written = []
    for k, (name, arch) in enumerate(FIXTURES.items()):
        model, branch, _ = _classifier(mods, arch, arch['depths'])
        _randomize(model, 100 + k)
        params = {n: (t.half().float() if _stored(n, t) else t).clone()
                  for n, t in model.state_dict().items()}
        images = {size: _image(10 * k + i, hw)
                  for i, (size, hw) in enumerate(SIZES.items())}
        inputs = {size: x.half() for size, x in images.items()}
        outputs = {}
        meta = dict(repository=REPOSITORY, commit=COMMIT,
                    original_commit=ORIGINAL_COMMIT, embed_dim=DIM,
                    mlp_ratio=MLP_RATIO, num_heads=HEADS,
                    num_classes=CLASSES, classifiers={}, dense={},
                    note='params and inputs are float16-exact: cast them '
                    'to float32; input.<size> feeds every case of that '
                    'size')
        for out, depths in arch['cls']:
            cls, cls_branch, kwargs = _classifier(mods, arch, depths)
            keys = cls.state_dict().keys()
            cls.load_state_dict({n: params[n] for n in keys})
            with torch.no_grad():
                outputs[f'{out}.224x224'] = cls.eval()(images['224x224'])
            meta['classifiers'][out] = dict(
                branch=cls_branch, depths=depths,
                group_size=arch['group_size'],
                crs_interval=arch['crs_interval'], acl=arch['acl'])
        for fixture, case, dense_branch, gs, iv, size in DENSE:
            if fixture != name:
                continue
            dkw = dict(_common(arch['depths']), img_size=[1024, 1024],
                       num_classes=1000, group_size=gs, crs_interval=iv,
                       mlp_ratio=MLP_RATIO)
            if dense_branch == 'main':
                dkw.update(use_acl=arch['acl'], adaptive_interval=False,
                           init_cfg=None)
                dense = mods['dense_main'].CrossFormer(**dkw)
            else:
                dense = mods['dense_original'].CrossFormer(**dkw)
            # as the official dense configs load a classifier file
            missing, _ = dense.load_state_dict(params, strict=False)
            assert not missing, missing
            with torch.no_grad():
                feats = dense.eval()(images[size])
            for s in STAGES[size]:
                outputs[f'{case}.{s}'] = feats[s]
            meta['dense'][case] = dict(
                branch=dense_branch, group_size=gs, crs_interval=iv,
                lda_mode='group' if dense_branch == 'main' else 'interval',
                size=size, stages=list(STAGES[size]))
        params = {n: (t.half() if _stored(n, t) else t)
                  for n, t in params.items()}
        path = osp.join(out_dir, f'{name}.npz')
        written.append(write_golden(path, params, inputs, outputs, meta))
    return written
