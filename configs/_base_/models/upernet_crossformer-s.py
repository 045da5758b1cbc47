# UperNet with a CrossFormer-S backbone, the official CrossFormer segmentation
# model on mmseg 1.x: the backbone's stride 4/8/16/32 pyramid feeds mmseg's
# UPerHead (512 ch, pool scales 1/2/3/6) directly, with an auxiliary FCNHead
# on the stride-16 map (256 ch, loss weight 0.4). Backbone as in
# mask-rcnn_crossformer-s_fpn.py.
#
# Norms: the heads are built with BN, and `sync_bn = 'torch'` makes
# mmengine's Runner turn them into SyncBN when (and only when) it runs
# distributed, the official setting. The backbone has LayerNorms only.
_base_ = 'mmseg::_base_/models/upernet_r50.py'

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(512, 512)),  # the training crop
    backbone=dict(
        _delete_=True,
        type='xcit_mm.CrossFormer',
        arch='small',
        out_indices=(0, 1, 2, 3),
        final_norm=False,
        group_size=(7, 7, 7, 7),
        interval=(8, 4, 2, 1),
        lda_mode='interval',
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/crossformer-s_backbone.pth',
            prefix='backbone.')),
    decode_head=dict(
        in_channels=[96, 192, 384, 768], channels=512, num_classes=150,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=384, in_index=2, channels=256, num_classes=150,
        norm_cfg=norm_cfg))
sync_bn = 'torch'
