# RetinaNet with a CrossFormer-S backbone, the official CrossFormer model on
# mmdet 3.x: the backbone's stride 8/16/32 maps feed mmdet's FPN (from level
# 1, extra convs on the input, 5 levels) directly. Backbone as in
# mask-rcnn_crossformer-s_fpn.py.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'

model = dict(
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
    neck=dict(in_channels=[96, 192, 384, 768], out_channels=256,
              start_level=1, add_extra_convs='on_input', num_outs=5))
