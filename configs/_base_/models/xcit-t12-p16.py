# XCiT-T12/16: tiny-12, 192 channels, drop path 0.0.
_base_ = './xcit-s12-p16.py'
model = dict(
    backbone=dict(arch='tiny-12', patch_size=16, drop_path_rate=0.0),
    head=dict(in_channels=192))
