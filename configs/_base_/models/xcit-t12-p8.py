# XCiT-T12/8: XCiT-T12/16 with 8x8 patches.
_base_ = './xcit-t12-p16.py'
model = dict(backbone=dict(patch_size=8))
