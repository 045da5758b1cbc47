# UperNet with an XCiT-S12/16 backbone, the official XCiT segmentation model
# on mmseg 1.x: XCiT's maps at blocks (3, 5, 7, 11) -> xcit_mm's stride
# 4/8/16/32 adapter -> mmseg's UPerHead (512 ch, pool scales 1/2/3/6) and an
# auxiliary FCNHead on the stride-16 map (256 ch, loss weight 0.4).
#
# Norms: the model is built with BN, and `sync_bn = 'torch'` makes mmengine's
# Runner turn every BN into SyncBN when (and only when) it runs distributed,
# which is the official setting (SyncBN in the backbone, adapter and heads).
# Single-process runs (CPU, one GPU, tests) keep BN.
_base_ = 'mmseg::_base_/models/upernet_r50.py'

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(512, 512)),  # the training crop
    backbone=dict(
        _delete_=True,
        type='xcit_mm.XCiT',
        arch='small-12',
        patch_size=16,
        out_type='featmap',  # no class token / class attention / final norm
        drop_path_rate=0.05,
        norm_cfg=norm_cfg,
        # Official init: the 384 px distilled ImageNet classifier. Make the
        # file with tools/model_converters/xcit2mm.py SRC DST --backbone-only
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/xcit-s12-p16_384-dist_backbone.pth',
            prefix='backbone.')),
    neck=dict(
        type='xcit_mm.XCiTMultiScaleNeck', in_channels=384, patch_size=16,
        norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=[384] * 4, channels=512, num_classes=150,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=384, in_index=2, channels=256, num_classes=150,
        norm_cfg=norm_cfg))
sync_bn = 'torch'
