# XCiT-T24/16: tiny-24, 192 channels, drop path 0.05.
_base_ = './xcit-s12-p16.py'
model = dict(
    backbone=dict(arch='tiny-24', patch_size=16, drop_path_rate=0.05),
    head=dict(in_channels=192))
