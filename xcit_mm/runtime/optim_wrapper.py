"""Mixed precision where mmengine's ``AmpOptimWrapper`` refuses to run."""
from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from xcit_mm.registry import OPTIM_WRAPPERS
from xcit_mm.utils.errors import ConfigError

DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16}


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose forward passes run under ``torch.autocast``.

    mmengine 0.10's ``AmpOptimWrapper`` asserts that a GPU (or NPU, MLU,
    MUSA) is present. On the CPU, mixed precision uses this wrapper with
    ``dtype='bfloat16'``: the matmuls and convolutions of the forward
    pass run in bf16 (``torch.autocast('cpu')``), the weights, gradients
    and optimizer state stay fp32. bf16 has fp32's exponent range, so no
    loss scaling is needed (none is done).

    Args:
        dtype (str): ``'bfloat16'`` (default) or ``'float16'``.
        device_type (str): The autocast device. Defaults to ``'cpu'``.
        **kwargs: ``OptimWrapper`` arguments (``optimizer``,
            ``clip_grad``, ``accumulative_counts``).
    """

    def __init__(self, dtype: str = 'bfloat16', device_type: str = 'cpu',
                 **kwargs) -> None:
        if dtype not in DTYPES:
            raise ConfigError(f'AutocastOptimWrapper dtype must be one of '
                              f'{sorted(DTYPES)}, got {dtype!r}.')
        super().__init__(**kwargs)
        self.dtype = dtype
        self.device_type = device_type

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast(
                device_type=self.device_type, dtype=DTYPES[self.dtype]):
            yield
