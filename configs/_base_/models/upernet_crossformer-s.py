# UperNet with a CrossFormer-S backbone, the official CrossFormer segmentation
# model on mmseg 1.x: the backbone's stride 4/8/16/32 pyramid feeds mmseg's
# UPerHead (512 ch, pool scales 1/2/3/6) directly, with an auxiliary FCNHead
# on the stride-16 map (256 ch, loss weight 0.4). Backbone as in
# crossformer-s_dense.py.
#
# Norms: the heads are built with BN, and `sync_bn = 'torch'` makes
# mmengine's Runner turn them into SyncBN when (and only when) it runs
# distributed, the official setting. The backbone has LayerNorms only.
_base_ = ['mmseg::_base_/models/upernet_r50.py',
         './crossformer-s_dense.py']

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(512, 512)),  # the training crop
    backbone={{_base_.crossformer_s_dense}},
    decode_head=dict(
        in_channels=[96, 192, 384, 768], channels=512, num_classes=150,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=384, in_index=2, channels=256, num_classes=150,
        norm_cfg=norm_cfg))
sync_bn = 'torch'
