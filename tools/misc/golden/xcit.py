"""XCiT golden outputs from facebookresearch/xcit.

Builds, from the checkout at :data:`COMMIT`:

- the classifier of ``xcit.py`` (``XCiT``) with the S12 settings (eta 1.0,
  tokens_norm True) at patch 16 and patch 8, at a small width and depth
  (the code path is the one of S12/16 and S12/8);
- the detection / segmentation backbone of
  ``semantic_segmentation/backbone/xcit.py`` (the same file as
  ``detection/backbone/xcit.py`` but for its imports) with its ``fpn1..4``
  adapter, at patch 16 and 8;
- an UperNet of that backbone and mmseg's ``UPerHead`` / ``FCNHead`` (the
  head classes of the official mmseg 0.x configs, whose 1.x versions keep
  the same modules and function), evaluated as mmseg's whole-image
  inference does (logits resized bilinearly to the image).

Each runs in eval mode on seeded random weights (every parameter and BN
statistic) and on blocky seeded uint8 images (8x8 blocks, so the files
compress) at 224x224, 200x300 and 512x683; a float input is
``(image - 127.5) / 58``. Dense maps are stored on the stride-32 lattice
(``out[..., ::32 // stride, ::32 // stride]``) and UperNet logits on every
8th pixel, to keep the fixtures small.

The official files import mmcv 1.x / mmseg 0.x helpers (``load_checkpoint``,
``get_root_logger``, ``BACKBONES``) and the old timm paths; those are
shimmed here at import time, never in xcit_mm. ``nn.SyncBatchNorm`` of the
official backbone runs as plain batch norm in eval mode.
"""
import importlib.util
import os.path as osp
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

REPOSITORY = 'facebookresearch/xcit'
COMMIT = '82f5291f412604970c39a912586e008ec009cdca'

SIZES = {'224x224': (224, 224), '200x300': (200, 300), '512x683': (512, 683)}
#: Small widths: the S12 code path (eta 1.0, tokens_norm True).
CLS_ARGS = dict(embed_dim=16, depth=2, num_heads=2, num_classes=10, eta=1.0,
                tokens_norm=True, qkv_bias=True)
DENSE_ARGS = dict(embed_dim=16, depth=4, num_heads=2, eta=1.0,
                  out_indices=[0, 1, 2, 3])
#: The tiny UperNet: two images whose sides are not multiples of 16, each
#: with its short side at 512 so that the ADE20k test pipeline
#: (Resize to (2048, 512), keep ratio) leaves it as it is.
UPERNET_IMAGES = ((512, 683), (600, 512))
UPERNET_HEAD = dict(channels=8, num_classes=4, pool_scales=(1, 2, 3, 6))
#: mmseg's ADE20k data preprocessor (RGB).
ADE_MEAN = (123.675, 116.28, 103.53)
ADE_STD = (58.395, 57.12, 57.375)


def blocky_image(h, w, seed, block=8):
    """A seeded (h, w, 3) uint8 image of ``block`` x ``block`` squares."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (-(-h // block), -(-w // block), 3),
                         dtype=np.uint8)
    return np.ascontiguousarray(
        small.repeat(block, 0).repeat(block, 1)[:h, :w])


def image_to_input(img):
    """(h, w, 3) uint8 -> (1, 3, h, w) float, the golden inputs' scaling."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    return ((x.float() - 127.5) / 58)[None]


def lattice(out, stride):
    k = max(32 // stride, 1)
    return out[..., ::k, ::k]


def _import(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # timm's register_model looks it up
    spec.loader.exec_module(module)
    return module


def import_official(repo):
    """(classifier module, dense backbone module) of the checkout."""
    import logging

    from mmseg.registry import MODELS
    shims = {
        'mmcv.runner': dict(load_checkpoint=None),
        'mmseg.utils': dict(get_root_logger=logging.getLogger),
        'mmseg.models.builder': dict(BACKBONES=MODELS),
    }
    saved = {name: sys.modules.get(name) for name in shims}
    try:
        for name, attrs in shims.items():
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module
        cls = _import('official_xcit', osp.join(repo, 'xcit.py'))
        dense = _import(
            'official_xcit_dense',
            osp.join(repo, 'semantic_segmentation', 'backbone', 'xcit.py'))
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return cls, dense


def _randomize(model, seed):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.dirname(osp.abspath(__file__))))))
    from tests.utils.models import randomize_
    with torch.no_grad():
        return randomize_(model, seed=seed).eval()


def generate(repo, out, write_golden):
    cls_mod, dense_mod = import_official(repo)
    images = {name: blocky_image(h, w, seed=i)
              for i, (name, (h, w)) in enumerate(SIZES.items())}
    meta = dict(repository=REPOSITORY, commit=COMMIT,
                input='(image - 127.5) / 58, image (1, H, W, 3) uint8')
    written = []
    torch.manual_seed(0)
    for seed, patch in enumerate((16, 8)):
        model = _randomize(
            cls_mod.XCiT(patch_size=patch, **CLS_ARGS), seed)
        with torch.no_grad():
            outputs = {name: model(image_to_input(img))
                       for name, img in images.items()}
        written.append(write_golden(
            osp.join(out, f'xcit_cls_p{patch}.npz'), model.state_dict(),
            {name: img[None] for name, img in images.items()}, outputs,
            dict(meta, model='xcit.py XCiT (S12 settings)',
                 args=dict(CLS_ARGS, patch_size=patch))))

        model = _randomize(dense_mod.XCiT(patch_size=patch, **DENSE_ARGS),
                           seed + 2)
        strides = (4, 8, 16, 32)
        outputs = {}
        with torch.no_grad():
            for name, img in images.items():
                feats = model(image_to_input(img))
                for i, (f, s) in enumerate(zip(feats, strides)):
                    outputs[f'{name}.fpn{i + 1}'] = lattice(f, s)
        written.append(write_golden(
            osp.join(out, f'xcit_dense_p{patch}.npz'), model.state_dict(),
            {name: img[None] for name, img in images.items()}, outputs,
            dict(meta, model='semantic_segmentation/backbone/xcit.py XCiT',
                 args=dict(DENSE_ARGS, patch_size=patch),
                 lattice='out[..., ::32 // stride, ::32 // stride]')))
    written.append(generate_upernet(dense_mod, out, write_golden, meta))
    return written


def generate_upernet(dense_mod, out, write_golden, meta):
    """The official backbone + mmseg's UPerHead / FCNHead (the official
    UperNet layout: ``backbone.*`` official names, ``decode_head.*``,
    ``auxiliary_head.*``) on two ADE-sized images, logits as mmseg's
    whole-image inference returns them (bilinear, align_corners False)."""
    from mmseg.models.decode_heads import FCNHead, UPerHead
    C = DENSE_ARGS['embed_dim']
    bn = dict(type='BN', requires_grad=True)
    backbone = dense_mod.XCiT(patch_size=16, **DENSE_ARGS)
    decode = UPerHead(in_channels=[C] * 4, in_index=[0, 1, 2, 3],
                      dropout_ratio=0.1, norm_cfg=bn, align_corners=False,
                      **UPERNET_HEAD)
    aux = FCNHead(in_channels=C, in_index=2, channels=8, num_convs=1,
                  concat_input=False, dropout_ratio=0.1,
                  num_classes=UPERNET_HEAD['num_classes'], norm_cfg=bn,
                  align_corners=False)
    model = _randomize(torch.nn.ModuleDict(dict(
        backbone=backbone, decode_head=decode, auxiliary_head=aux)), 5)
    mean = torch.tensor(ADE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(ADE_STD).view(1, 3, 1, 1)
    inputs, outputs = {}, {}
    for i, (h, w) in enumerate(UPERNET_IMAGES):
        bgr = blocky_image(h, w, seed=10 + i)
        rgb = torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1)
        x = (rgb[None].float() - mean) / std
        with torch.no_grad():
            logits = model['decode_head'](model['backbone'](x))
            logits = F.interpolate(logits, size=(h, w), mode='bilinear',
                                   align_corners=False)
        inputs[f'image{i}'] = bgr  # as cv2 reads the PNG: BGR
        outputs[f'image{i}'] = logits[0, :, ::8, ::8]
    return write_golden(
        osp.join(out, 'xcit_upernet_p16.npz'), model.state_dict(), inputs,
        outputs,
        dict(meta, model='semantic_segmentation/backbone/xcit.py XCiT + '
             'mmseg UPerHead / FCNHead', args=dict(DENSE_ARGS,
                                                    patch_size=16),
             head=dict(UPERNET_HEAD, aux_channels=8),
             input='BGR uint8 images, mmseg ADE20k mean / std',
             lattice='logits[0, :, ::8, ::8]'))
