# XCiT-L24/16: large-24, 768 channels, drop path 0.25.
_base_ = './xcit-s12-p16.py'
model = dict(
    backbone=dict(arch='large-24', patch_size=16, drop_path_rate=0.25),
    head=dict(in_channels=768))
