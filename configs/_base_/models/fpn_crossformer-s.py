# Semantic FPN with a CrossFormer-S backbone, the official CrossFormer
# segmentation model on mmseg 1.x: the backbone's stride 4/8/16/32 pyramid
# feeds mmseg's FPN (256 ch, 4 levels) and FPNHead (128 ch) directly.
# Backbone as in mask-rcnn_crossformer-s_fpn.py; BN heads become SyncBN in
# distributed runs (`sync_bn = 'torch'`).
_base_ = 'mmseg::_base_/models/fpn_r50.py'

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
    neck=dict(in_channels=[96, 192, 384, 768], out_channels=256, num_outs=4),
    decode_head=dict(
        in_channels=[256] * 4, channels=128, num_classes=150,
        norm_cfg=norm_cfg))
sync_bn = 'torch'
