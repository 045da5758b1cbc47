"""Every CrossFormer config parses, holds the official recipe and builds its
full-size model (on the meta device) with the published parameter count;
every dense config holds the settings of the official config that produced
its published figure (pinned below), and the ADE20k ones test images as the
official ``AlignResize`` does."""
import glob
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope

from tests.utils import REPO, load_config
from xcit_mm.models import CrossFormer

#: Published parameter counts (M) of the official models.
PUBLISHED = {
    'crossformer/crossformer-t_in1k.py': 27.8,
    'crossformer/crossformer-s_in1k.py': 30.7,
    'crossformer/crossformer-b_in1k.py': 52.0,
    'crossformer/crossformer-l_in1k.py': 92.0,
    'crossformer/crossformer-pp-s_in1k.py': 23.3,
    'crossformer/crossformer-pp-b_in1k.py': 52.0,
    'crossformer/crossformer-pp-l_in1k.py': 92.0,
    'crossformer/crossformer-pp-h_in1k.py': 96.0,
    'mask_rcnn/mask-rcnn_crossformer-s_fpn_1x_coco.py': 50.2,
    'mask_rcnn/mask-rcnn_crossformer-s_fpn_3x_coco.py': 50.2,
    'mask_rcnn/mask-rcnn_crossformer-b_fpn_1x_coco.py': 71.5,
    'mask_rcnn/mask-rcnn_crossformer-b_fpn_3x_coco.py': 71.5,
    'retinanet/retinanet_crossformer-s_fpn_1x_coco.py': 40.8,
    'retinanet/retinanet_crossformer-b_fpn_1x_coco.py': 62.1,
    'upernet/upernet_crossformer-s_8xb2-160k_ade20k-512x512.py': 62.3,
    'upernet/upernet_crossformer-b_8xb2-160k_ade20k-512x512.py': 83.6,
    'upernet/upernet_crossformer-l_8xb2-160k_ade20k-512x512.py': 125.5,
    'sem_fpn/fpn_crossformer-s_8xb4-80k_ade20k-512x512.py': 34.3,
    'sem_fpn/fpn_crossformer-b_8xb4-80k_ade20k-512x512.py': 55.6,
    'sem_fpn/fpn_crossformer-l_8xb4-80k_ade20k-512x512.py': 95.4,
}
DROP_PATH = dict(tiny=0.1, small=0.2, base=0.3, large=0.5, **{
    'pp-small': 0.2, 'pp-base': 0.3, 'pp-large': 0.5, 'pp-huge': 0.5})
CONFIGS = sorted(
    osp.relpath(p, osp.join(REPO, 'configs'))
    for p in glob.glob(osp.join(REPO, 'configs', '*', '*crossformer-*.py'))
    if 'demo' not in p)

# The official dense configs (cheerss/CrossFormer, branch `crossformer`,
# which produced the published figures; detection/configs/ and
# segmentation/configs/), read off by hand: backbone (crossformer_factory.py:
# patch sizes [4, 8, 16, 32], merge sizes [[2, 4]] * 3, drop path 0.2 / 0.3
# / 0.5 for S / B / L, and the config's group_size / crs_interval; the
# branch's models/crossformer_backbone.py lays LDA out as
# lda_mode='interval'), neck and heads (the config over its mmdet 2.8 /
# mmseg 0.12 base) and test settings.
G7 = dict(group_size=(7, 7, 7, 7), interval=(8, 4, 2, 1))
G14 = dict(group_size=(14, 14, 7, 7), interval=(16, 8, 2, 1))
S = dict(arch='small', drop_path_rate=0.2)
B = dict(arch='base', drop_path_rate=0.3)
L = dict(arch='large', drop_path_rate=0.5)
C96 = [96, 192, 384, 768]
C128 = [128, 256, 512, 1024]
MASK_RCNN = dict(
    neck=dict(type='FPN', in_channels=C96, out_channels=256, num_outs=5),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=1000,
                 nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=100, mask_thr_binary=0.5)))
RETINANET = dict(
    neck=dict(type='FPN', in_channels=C96, out_channels=256, start_level=1,
              add_extra_convs='on_input', num_outs=5),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))


def _fpn(channels):
    return dict(
        neck=dict(type='FPN', in_channels=channels, out_channels=256,
                  num_outs=4),
        decode_head=dict(type='FPNHead', in_channels=[256] * 4,
                         in_index=[0, 1, 2, 3],
                         feature_strides=[4, 8, 16, 32], channels=128,
                         dropout_ratio=0.1, num_classes=150,
                         align_corners=False),
        test_cfg=dict(mode='whole'))


def _upernet(channels):
    return dict(
        decode_head=dict(type='UPerHead', in_channels=channels,
                         in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6),
                         channels=512, dropout_ratio=0.1, num_classes=150,
                         align_corners=False),
        auxiliary_head=dict(type='FCNHead', in_channels=channels[2],
                            in_index=2, channels=256, num_convs=1,
                            concat_input=False, dropout_ratio=0.1,
                            num_classes=150, align_corners=False),
        test_cfg=dict(mode='whole'))


OFFICIAL_DENSE = {
    # detection/configs/mask_rcnn_crossformer_{s,b}_fpn_1x_coco.py (the 3x
    # configs: no official file, the 1x model)
    'mask_rcnn/mask-rcnn_crossformer-s_fpn_1x_coco.py': dict(
        backbone=dict(S, **G7), **MASK_RCNN),
    'mask_rcnn/mask-rcnn_crossformer-s_fpn_3x_coco.py': dict(
        backbone=dict(S, **G7), **MASK_RCNN),
    'mask_rcnn/mask-rcnn_crossformer-b_fpn_1x_coco.py': dict(
        backbone=dict(B, **G7), **MASK_RCNN),
    'mask_rcnn/mask-rcnn_crossformer-b_fpn_3x_coco.py': dict(
        backbone=dict(B, **G7), **MASK_RCNN),
    # detection/configs/retinanet_crossformer_{s,b}_fpn_1x_coco.py
    'retinanet/retinanet_crossformer-s_fpn_1x_coco.py': dict(
        backbone=dict(S, **G7), **RETINANET),
    'retinanet/retinanet_crossformer-b_fpn_1x_coco.py': dict(
        backbone=dict(B, **G7), **RETINANET),
    # segmentation/configs/upernet_crossformer_{s,b,l}_ade20k.py
    'upernet/upernet_crossformer-s_8xb2-160k_ade20k-512x512.py': dict(
        backbone=dict(S, **G7), **_upernet(C96)),
    'upernet/upernet_crossformer-b_8xb2-160k_ade20k-512x512.py': dict(
        backbone=dict(B, **G7), **_upernet(C96)),
    'upernet/upernet_crossformer-l_8xb2-160k_ade20k-512x512.py': dict(
        backbone=dict(L, **G7), **_upernet(C128)),
    # segmentation/configs/fpn_crossformer_{s,b,l}_ade20k_40k.py
    'sem_fpn/fpn_crossformer-s_8xb4-80k_ade20k-512x512.py': dict(
        backbone=dict(S, **G14), **_fpn(C96)),
    'sem_fpn/fpn_crossformer-b_8xb4-80k_ade20k-512x512.py': dict(
        backbone=dict(B, **G7), **_fpn(C96)),
    'sem_fpn/fpn_crossformer-l_8xb4-80k_ade20k-512x512.py': dict(
        backbone=dict(L, **G14), **_fpn(C128)),
}
ADE20K = sorted(c for c in OFFICIAL_DENSE if 'ade20k' in c)


def _subset(actual, expected):
    """The entries of ``actual`` named in ``expected`` (recursively)."""
    if isinstance(expected, dict):
        return {k: _subset(actual.get(k), v) for k, v in expected.items()}
    if isinstance(actual, (list, tuple)):
        return type(expected)(actual)
    return actual


def test_every_published_model_has_a_config():
    assert set(CONFIGS) == set(PUBLISHED)
    assert set(OFFICIAL_DENSE) == {c for c in CONFIGS
                                   if not c.startswith('crossformer/')}


@pytest.mark.parametrize('config', sorted(OFFICIAL_DENSE))
def test_dense_config_holds_the_official_settings(config):
    cfg = load_config(osp.join(REPO, 'configs', config))
    expected = dict(OFFICIAL_DENSE[config],
                    backbone=dict(OFFICIAL_DENSE[config]['backbone'],
                                  lda_mode='interval'))
    model = cfg.model.to_dict()
    assert _subset(model, expected) == expected
    if 'ade20k' in config:
        # the official AlignResize, single scale (see the test below)
        steps = [(t['type'], t.get('scale'), t.get('size_divisor'))
                 for t in cfg.test_dataloader.dataset.pipeline]
        assert steps[1:3] == [('Resize', (2048, 512), None),
                              ('ResizeToMultiple', None, 32)]
        assert cfg.test_dataloader.dataset.pipeline[1]['keep_ratio']
        # every ADE20k config tests alike (the image tests use the first)
        assert cfg.val_dataloader.dataset.pipeline == \
            cfg.test_dataloader.dataset.pipeline == load_config(osp.join(
                REPO, 'configs', ADE20K[0])).test_dataloader.dataset.pipeline
        # nothing padded at test time
        assert not model['data_preprocessor'].get('test_cfg')
    else:
        # mmdet 2.x: Resize((1333, 800), keep_ratio) + Pad(size_divisor=32)
        resize = cfg.test_dataloader.dataset.pipeline[1]
        assert (resize['type'], resize['scale'], resize['keep_ratio']) == \
            ('Resize', (1333, 800), True)
        assert model['data_preprocessor']['pad_size_divisor'] == 32


def _official_align_resize(img, scale=(2048, 512), divisor=32):
    """The official test resize (segmentation/align_resize.py,
    ``AlignResize._resize_img`` with keep_ratio=True), step by step with
    the mmcv calls it makes: rescale, then resize to the sides rounded up
    to a multiple of ``divisor``."""
    img = mmcv.imrescale(img, scale)
    h, w = img.shape[:2]
    return mmcv.imresize(img, (int(np.ceil(w / divisor)) * divisor,
                               int(np.ceil(h / divisor)) * divisor))


def _write_image(tmp_path, hw):
    rng = np.random.default_rng(hw[0] * 7 + hw[1])
    img = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    mmcv.imwrite(img, str(tmp_path / 'a.png'))
    mmcv.imwrite(np.zeros(hw, np.uint8), str(tmp_path / 'a_seg.png'))
    return img, dict(img_path=str(tmp_path / 'a.png'),
                     seg_map_path=str(tmp_path / 'a_seg.png'),
                     seg_fields=[], reduce_zero_label=True)


def _compose(pipeline):
    from mmengine.dataset import Compose
    from mmseg.utils import register_all_modules

    import xcit_mm.datasets  # noqa: F401  (xcit_mm.LoadImageFromFile)
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return Compose(pipeline)


@pytest.mark.parametrize('hw', [(384, 512), (375, 500), (512, 683),
                                (683, 512), (300, 1400), (640, 640)])
def test_ade20k_test_image_is_the_official_one(tmp_path, hw):
    """The image that reaches the backbone through the test pipeline and
    the data preprocessor equals the official AlignResize output (a
    384 x 512 image: 512 x 704, where mmseg's default gives 512 x 683)."""
    from mmseg.registry import MODELS
    cfg = load_config(osp.join(REPO, 'configs', ADE20K[0]))
    img, results = _write_image(tmp_path, hw)
    data = _compose(cfg.test_dataloader.dataset.pipeline)(results)
    with DefaultScope.overwrite_default_scope('mmseg'):
        preprocessor = MODELS.build(cfg.model.data_preprocessor)
    batch = preprocessor(dict(inputs=[data['inputs']],
                              data_samples=[data['data_samples']]), False)
    expected = _official_align_resize(img)
    assert expected.shape[0] % 32 == 0 and expected.shape[1] % 32 == 0
    mean = torch.tensor(cfg.model.data_preprocessor.mean).view(3, 1, 1)
    std = torch.tensor(cfg.model.data_preprocessor.std).view(3, 1, 1)
    rgb = torch.from_numpy(expected[..., ::-1].copy()).permute(2, 0, 1)
    assert batch['inputs'].shape[2:] == expected.shape[:2]
    torch.testing.assert_close(batch['inputs'][0], (rgb.float() - mean) / std,
                               rtol=0, atol=0)
    # the prediction is resized back from the aligned image, as officially
    meta = batch['data_samples'][0].metainfo
    assert tuple(meta['img_shape']) == expected.shape[:2]
    assert tuple(meta['ori_shape']) == hw


def test_ade20k_multi_scale_test_is_the_official_one(tmp_path):
    """TTA: the official MultiScaleFlipAug (img_scale=(2048, 512), six
    img_ratios, flip=False): the original image rescaled to fit
    (int(2048 r), int(512 r)), then aligned to 32; no flips."""
    cfg = load_config(osp.join(REPO, 'configs', ADE20K[0]))
    img, results = _write_image(tmp_path, (384, 512))
    data = _compose(cfg.tta_pipeline)(results)
    ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert len(data['inputs']) == len(ratios)
    for r, inputs, sample in zip(ratios, data['inputs'],
                                 data['data_samples']):
        expected = _official_align_resize(
            img, scale=(int(2048 * r), int(512 * r)))
        bgr = torch.from_numpy(expected.copy()).permute(2, 0, 1)
        assert torch.equal(inputs, bgr), r
        assert not sample.metainfo.get('flip')


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_with_the_published_size(config):
    cfg = load_config(osp.join(REPO, 'configs', config))
    scope = cfg.default_scope
    backbone = cfg.model.backbone
    assert backbone.type == 'xcit_mm.CrossFormer'
    assert backbone.drop_path_rate == DROP_PATH[backbone.arch]
    dense = scope != 'mmpretrain'
    assert backbone.final_norm is not dense
    if dense:
        assert tuple(backbone.out_indices) == (0, 1, 2, 3)
        assert backbone.init_cfg.checkpoint.endswith('_backbone.pth')
        assert cfg.auto_scale_lr.base_batch_size == \
            8 * cfg.train_dataloader.batch_size
    else:
        optim = cfg.optim_wrapper
        assert (optim.optimizer.lr, optim.optimizer.weight_decay,
                optim.clip_grad.max_norm) == (1e-3, 0.05, 5.0)
        assert cfg.train_cfg.max_epochs == 300
        assert cfg.param_scheduler[0].end == 20
        assert cfg.train_dataloader.sampler.type == 'DefaultSampler'
    from importlib import import_module
    registry = import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope), torch.device('meta'):
        model = registry.build(cfg.model)
    assert isinstance(model.backbone, CrossFormer)
    n = sum(p.numel() for p in model.parameters())
    assert round(n / 1e6, 1) == PUBLISHED[config]
    # the official patch sizes [4, 8, 16, 32] and merge sizes [[2, 4]] * 3
    bb = model.backbone
    assert [p.kernel_size[0] for p in bb.patch_embed.projs] == [4, 8, 16, 32]
    assert all([r.kernel_size[0] for r in stage.downsample.reductions] ==
               [2, 4] for stage in bb.layers[:3])
