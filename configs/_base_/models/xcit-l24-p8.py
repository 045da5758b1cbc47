# XCiT-L24/8: XCiT-L24/16 with 8x8 patches.
_base_ = './xcit-l24-p16.py'
model = dict(backbone=dict(patch_size=8))
