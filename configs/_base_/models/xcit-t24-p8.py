# XCiT-T24/8: XCiT-T24/16 with 8x8 patches.
_base_ = './xcit-t24-p16.py'
model = dict(backbone=dict(patch_size=8))
