# XCiT-S12/16 in an mmpretrain config: mmpretrain's ResNet-50 ImageNet
# recipe with the backbone swapped (python tools/train.py THIS_FILE).
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
model = dict(
    backbone=dict(_delete_=True, type='xcit_mm.XCiT', arch='s12',
                  patch_size=16, drop_path_rate=0.05),
    neck=None,  # XCiT returns the class token: no pooling
    head=dict(in_channels=384))
