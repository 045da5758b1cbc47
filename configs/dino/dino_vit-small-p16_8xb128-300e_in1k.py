# The same DINO with another backbone: mmpretrain's VisionTransformer
# (ViT-S/16, DINO's default model: drop path 0.1, norm_last_layer True,
# teacher temperature 0.04 -> 0.04; the XCiT schedule otherwise).
_base_ = './dino_xcit-s12-p16_8xb128-300e_in1k.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        out_type='cls_token',
        drop_path_rate=0.1),
    head=dict(in_channels=384, norm_last_layer=True),
    loss=dict(teacher_temp=0.04, warmup_teacher_temp_epochs=0))
sync_bn = None
