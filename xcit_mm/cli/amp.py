"""Which half-precision dtype ``--amp`` uses on a device."""
from typing import Union

import torch


def select_amp_dtype(device: Union[str, torch.device]) -> str:
    """``'bfloat16'`` where ``device`` computes bf16 natively, else
    ``'float16'`` (with dynamic loss scaling, set by the caller).

    On CUDA, bf16 is native from compute capability 8.0 (Ampere) on; older
    GPUs (V100, T4) only emulate it, slowly, which
    ``torch.cuda.is_bf16_supported()`` counts as support by default. The
    capability is read for ``device`` itself, before ``set_device``, and
    without creating a CUDA context (``is_bf16_supported`` queries the
    *current* device, GPU 0 in every rank at that point, and its emulation
    test allocates there). ROCm GPUs get bf16. Other devices: ``'float16'``.

    Args:
        device (str | torch.device): e.g. ``'cuda:3'`` (the rank's GPU) or
            ``'cpu'``.
    """
    device = torch.device(device)
    if device.type != 'cuda':
        return 'float16'
    if torch.version.hip:
        return 'bfloat16'
    index = device.index if device.index is not None else 0
    major, _ = torch.cuda.get_device_capability(index)
    return 'bfloat16' if major >= 8 else 'float16'
