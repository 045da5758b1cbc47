# Mask R-CNN with a CrossFormer-S backbone, the official CrossFormer detection
# model on mmdet 3.x: the backbone's own stride 4/8/16/32 pyramid (96, 192,
# 384, 768 channels) feeds mmdet's FPN (256 channels, 5 levels) directly.
#
# The backbone is the official dense one: no output norms, G = 7 and
# I = (8, 4, 2, 1), LDA laid out as in the code that produced the published
# results (`lda_mode='interval'`: I x I groups over the whole map).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

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
        # Official init: the ImageNet-1k classifier. Make the file with
        # tools/model_converters/crossformer2mm.py SRC DST --backbone-only
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/crossformer-s_backbone.pth',
            prefix='backbone.')),
    neck=dict(in_channels=[96, 192, 384, 768], out_channels=256,
              num_outs=5))
