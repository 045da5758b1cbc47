# Semantic FPN with an XCiT-S12/16 backbone, the official XCiT segmentation
# model on mmseg 1.x: XCiT's maps at blocks (3, 5, 7, 11) -> xcit_mm's stride
# 4/8/16/32 adapter -> mmseg's FPN (out_channels = the backbone's width, 4
# levels, as in the official configs) -> FPNHead (128 ch). A list of necks is
# built by mmengine as a Sequential: adapter first, then FPN.
#
# Norms: BN here; `sync_bn = 'torch'` turns every BN into SyncBN when the
# Runner runs distributed (official setting), single-process runs keep BN.
_base_ = 'mmseg::_base_/models/fpn_r50.py'

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(512, 512)),  # the training crop
    backbone=dict(
        _delete_=True,
        type='xcit_mm.XCiT',
        arch='small-12',
        patch_size=16,
        out_type='featmap',
        drop_path_rate=0.05,
        norm_cfg=norm_cfg,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/xcit-s12-p16_384-dist_backbone.pth',
            prefix='backbone.')),
    neck=[
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=384,
             patch_size=16, norm_cfg=norm_cfg),
        dict(type='FPN', in_channels=[384] * 4, out_channels=384,
             num_outs=4),
    ],
    decode_head=dict(
        in_channels=[384] * 4, channels=128, num_classes=150,
        norm_cfg=norm_cfg))
sync_bn = 'torch'
