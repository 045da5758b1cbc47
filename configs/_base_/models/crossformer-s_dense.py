# The CrossFormer-S backbone of the official detection and segmentation
# models, shared by the Mask R-CNN, RetinaNet, UperNet and Semantic FPN
# bases as `backbone={{_base_.crossformer_s_dense}}`: its stride 4/8/16/32
# pyramid (96, 192, 384, 768 channels), no output norms, G = 7 and
# I = (8, 4, 2, 1), LDA laid out as in the code that produced the published
# results (`lda_mode='interval'`: I x I groups over the whole map).
# `_delete_` drops the ResNet-50 settings of the mmdet / mmseg base.
crossformer_s_dense = dict(
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
        prefix='backbone.'))
