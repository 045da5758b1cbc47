# XCiT-S24/8: XCiT-S24/16 with 8x8 patches.
_base_ = './xcit-s24-p16.py'
model = dict(backbone=dict(patch_size=8))
