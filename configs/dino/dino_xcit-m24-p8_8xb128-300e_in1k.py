# DINO pre-training of XCiT-M24/8 (total batch 1024; see the S12/8 note on
# memory). Published: k-NN 77.9, linear 80.3.
_base_ = './dino_xcit-m24-p16_8xb128-300e_in1k.py'
model = dict(backbone=dict(patch_size=8))
