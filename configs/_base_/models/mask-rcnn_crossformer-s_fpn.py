# Mask R-CNN with a CrossFormer-S backbone, the official CrossFormer detection
# model on mmdet 3.x: the backbone's own stride 4/8/16/32 pyramid (96, 192,
# 384, 768 channels) feeds mmdet's FPN (256 channels, 5 levels) directly.
# The backbone (the official dense one) is in crossformer-s_dense.py.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py',
         './crossformer-s_dense.py']

model = dict(
    backbone={{_base_.crossformer_s_dense}},
    neck=dict(in_channels=[96, 192, 384, 768], out_channels=256,
              num_outs=5))
