# XCiT-S24/8, distilled from RegNetY-16GF (DeiT-style, hard), 224 px.
_base_ = ['./xcit-s24-p8_in1k.py', '../_base_/models/distill_regnety-160.py']
model = _base_.distill
