# XCiT-S12/16 in an mmseg config: mmseg's UperNet R-50 ADE20k recipe with the
# backbone swapped, the official multi-scale adapter in front of UPerHead.
_base_ = 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py'
model = dict(
    pretrained=None,  # the base's ResNet weights: XCiT uses init_cfg
    backbone=dict(
        _delete_=True, type='xcit_mm.XCiT', arch='s12', patch_size=16,
        out_type='featmap', drop_path_rate=0.05,
        # tools/model_converters/xcit2mm.py SRC DST --backbone-only
        init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint='checkpoints/xcit-s12-p16_384-dist_backbone.pth')),
    neck=dict(type='xcit_mm.XCiTMultiScaleNeck', in_channels=384,
              patch_size=16),
    decode_head=dict(in_channels=[384] * 4),
    auxiliary_head=dict(in_channels=384, in_index=2))
