# XCiT-S24/16: small-24, 384 channels, drop path 0.1.
_base_ = './xcit-s12-p16.py'
model = dict(
    backbone=dict(arch='small-24', patch_size=16, drop_path_rate=0.1),
    head=dict(in_channels=384))
