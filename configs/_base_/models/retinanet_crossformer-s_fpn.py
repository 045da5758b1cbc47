# RetinaNet with a CrossFormer-S backbone, the official CrossFormer model on
# mmdet 3.x: the backbone's stride 8/16/32 maps feed mmdet's FPN (from level
# 1, extra convs on the input, 5 levels) directly. Backbone as in
# crossformer-s_dense.py.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py',
         './crossformer-s_dense.py']

model = dict(
    backbone={{_base_.crossformer_s_dense}},
    neck=dict(in_channels=[96, 192, 384, 768], out_channels=256,
              start_level=1, add_extra_convs='on_input', num_outs=5))
