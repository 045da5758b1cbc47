# XCiT-N12/16: nano-12, 128 channels, drop path 0.0.
_base_ = './xcit-s12-p16.py'
model = dict(
    backbone=dict(arch='nano-12', patch_size=16, drop_path_rate=0.0),
    head=dict(in_channels=128))
