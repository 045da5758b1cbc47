# Mask R-CNN with an XCiT-S12/16 backbone, the official XCiT detection model
# on mmdet 3.x: mmdet's Mask R-CNN (FPN 256 ch, 5 levels; RoI featmap strides
# 4/8/16/32), fed by XCiT's maps at blocks (3, 5, 7, 11) turned into a
# stride 4/8/16/32 pyramid by xcit_mm.XCiTMultiScaleNeck. A list of necks is
# built by mmengine as a Sequential: adapter first, then FPN.
#
# Norms: the model is built with BN, and `sync_bn = 'torch'` makes mmengine's
# Runner turn every BN into SyncBN when (and only when) it runs distributed,
# which is the official setting (SyncBN everywhere in the backbone and
# adapter). Single-process runs (CPU, one GPU, tests) keep BN.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='xcit_mm.XCiT',
        arch='small-12',
        patch_size=16,
        out_type='featmap',  # no class token / class attention / final norm
        drop_path_rate=0.05,
        norm_cfg=dict(type='BN'),
        # Official init: the 384 px distilled ImageNet classifier. Make the
        # file with tools/model_converters/xcit2mm.py SRC DST --backbone-only
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/xcit-s12-p16_384-dist_backbone.pth',
            prefix='backbone.')),
    neck=[
        dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=384,
             patch_size=16, norm_cfg=dict(type='BN')),
        dict(type='FPN', in_channels=[384] * 4, out_channels=256,
             num_outs=5),
    ])
sync_bn = 'torch'
