# Linear probe of a DINO XCiT-M24/16 (see the S12/16 file for the recipe).
_base_ = './xcit-s12-p16_dino-pre_linear-8xb128-100e_in1k.py'
dino_checkpoint = 'work_dirs/dino_xcit-m24-p16_8xb128-300e_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        arch='medium-24', patch_size=16, frozen_stages=24,
        init_cfg=dict(checkpoint=dino_checkpoint)),
    head=dict(in_channels=512))
