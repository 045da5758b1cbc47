# XCiT-M24/8: XCiT-M24/16 with 8x8 patches.
_base_ = './xcit-m24-p16.py'
model = dict(backbone=dict(patch_size=8))
