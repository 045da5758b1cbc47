# XCiT-S12/8: XCiT-S12/16 with 8x8 patches.
_base_ = './xcit-s12-p16.py'
model = dict(backbone=dict(patch_size=8))
