# Semantic FPN with a CrossFormer-S backbone, the official CrossFormer
# segmentation model on mmseg 1.x: the backbone's stride 4/8/16/32 pyramid
# feeds mmseg's FPN (256 ch, 4 levels) and FPNHead (128 ch) directly.
# Backbone as in crossformer-s_dense.py; BN heads become SyncBN in
# distributed runs (`sync_bn = 'torch'`).
_base_ = ['mmseg::_base_/models/fpn_r50.py',
         './crossformer-s_dense.py']

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(512, 512)),  # the training crop
    backbone={{_base_.crossformer_s_dense}},
    neck=dict(in_channels=[96, 192, 384, 768], out_channels=256, num_outs=4),
    decode_head=dict(
        in_channels=[256] * 4, channels=128, num_classes=150,
        norm_cfg=norm_cfg))
sync_bn = 'torch'
