from .arch import check_patch_size, normalize_out_indices

__all__ = ['check_patch_size', 'normalize_out_indices']
