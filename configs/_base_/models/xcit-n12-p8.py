# XCiT-N12/8: XCiT-N12/16 with 8x8 patches.
_base_ = './xcit-n12-p16.py'
model = dict(backbone=dict(patch_size=8))
