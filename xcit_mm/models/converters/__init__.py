"""Checked conversions of foreign checkpoints into xcit_mm models."""
