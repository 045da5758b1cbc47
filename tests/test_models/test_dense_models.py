"""Mask R-CNN, UperNet and Semantic FPN built from the real configs with a
tiny XCiT: every backbone and neck parameter gets a gradient (DDP needs no
find_unused_parameters), and a ``--backbone-only`` converted timm
checkpoint loads through ``init_cfg`` with every backbone tensor filled."""
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.structures import SegDataSample

from tests.utils import REPO, convert_tiny_timm_backbone, tiny_dense_config

MASK_RCNN = 'configs/mask_rcnn/mask-rcnn_xcit-s12-p{}_fpn_1x_coco.py'
UPERNET = 'configs/upernet/upernet_xcit-s12-p{}_8xb2-160k_ade20k-512x512.py'
SEM_FPN = 'configs/sem_fpn/fpn_xcit-s12-p{}_8xb2-80k_ade20k-512x512.py'


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from more threads, and on a busy machine
    spinning OpenMP threads make a step many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(config: str, checkpoint: str = None):
    cfg = tiny_dense_config(osp.join(REPO, config), checkpoint=checkpoint)
    init_default_scope(cfg.default_scope)
    registry = MMDET_MODELS if cfg.default_scope == 'mmdet' else \
        MMSEG_MODELS
    return registry.build(cfg.model)


def seg_batch(n: int = 2, size=(64, 64)) -> dict:
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size))
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, 150, (1, *size), generator=g))
        samples.append(s)
    inputs = [torch.randint(0, 256, (3, *size), generator=g).float()
              for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def losses_of(model, config: str):
    model.train()
    if 'mask_rcnn' in config:
        packed = demo_mm_inputs(2, [(3, 64, 96)] * 2, num_items=[3, 2],
                                num_classes=80, with_mask=True)
    else:
        packed = seg_batch()
    data = model.data_preprocessor(packed, True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    return loss


@pytest.mark.parametrize('config', [
    MASK_RCNN.format(16), MASK_RCNN.format(8), UPERNET.format(16),
    UPERNET.format(8), SEM_FPN.format(16), SEM_FPN.format(8)
], ids=lambda c: osp.basename(c)[:-3])
def test_every_backbone_and_neck_parameter_gets_a_gradient(config):
    torch.manual_seed(0)
    model = build(config)
    model.init_weights()
    losses_of(model, config).backward()
    checked = 0
    for part in (model.backbone, model.neck):
        for name, p in part.named_parameters():
            assert p.grad is not None, f'{name} got no gradient'
            checked += 1
    assert checked > 100


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """--backbone-only conversions of randomised timm XCiTs of the tiny
    dense arch, p16 and p8: {patch: (xcit_mm file, timm-derived tensors)}."""
    root = tmp_path_factory.mktemp('converted')
    out = {}
    for patch in (16, 8):
        dst = str(root / f'xcit-tiny-p{patch}_backbone.pth')
        out[patch] = dst, convert_tiny_timm_backbone(dst, patch, seed=patch)
    return out


@pytest.mark.parametrize('config,patch', [(MASK_RCNN.format(16), 16),
                                          (UPERNET.format(8), 8)],
                         ids=['mask-rcnn-p16', 'upernet-p8'])
def test_converted_backbone_only_checkpoint_loads(config, patch, converted):
    path, timm_backbone = converted[patch]
    model = build(config, checkpoint=path)
    model.init_weights()  # the config's init_cfg route (Pretrained)
    own = model.backbone.state_dict()
    # every backbone tensor comes from the timm model, none is left over
    assert sorted(own) == sorted(
        k for k in timm_backbone
        if not k.startswith(('cls_token', 'cls_attn_blocks', 'norm.')))
    for k, v in own.items():
        torch.testing.assert_close(v, timm_backbone[k], msg=k)
    # the checked loader's own counts
    counts = model.backbone.load_pretrained(path, prefix='backbone.')
    assert counts['loaded'] == len(own) > 50
    assert counts['missing'] == counts['unexpected'] == 0
    assert counts['skipped_classification_only'] == 0  # --backbone-only


@pytest.mark.parametrize('config', [MASK_RCNN.format(16), UPERNET.format(16),
                                    SEM_FPN.format(8)],
                         ids=['mask-rcnn', 'upernet', 'sem-fpn'])
def test_configs_sync_bn_reaches_every_norm(config):
    """What mmengine's Runner does with the configs' `sync_bn='torch'` when
    it runs distributed: every BN (backbone, adapter, heads) -> SyncBN."""
    from mmengine.model import convert_sync_batchnorm
    model = build(config)
    bns = [n for n, m in model.named_modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert any(n.startswith('backbone.') for n in bns)
    assert any(n.startswith('neck.') for n in bns) == ('p16' in config)
    model = convert_sync_batchnorm(model, 'torch')
    synced = [n for n, m in model.named_modules()
              if isinstance(m, torch.nn.SyncBatchNorm)]
    assert synced == bns
