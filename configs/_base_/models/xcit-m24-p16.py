# XCiT-M24/16: medium-24, 512 channels, drop path 0.15.
_base_ = './xcit-s12-p16.py'
model = dict(
    backbone=dict(arch='medium-24', patch_size=16, drop_path_rate=0.15),
    head=dict(in_channels=512))
