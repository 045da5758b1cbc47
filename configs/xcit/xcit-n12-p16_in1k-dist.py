# XCiT-N12/16, distilled from RegNetY-16GF (DeiT-style, hard), 224 px.
_base_ = ['./xcit-n12-p16_in1k.py', '../_base_/models/distill_regnety-160.py']
model = _base_.distill
