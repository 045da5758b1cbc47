"""``compute_attention`` copies the maps to the host before ``.numpy()``
(the GPU run is in tools/analysis_tools/gpu_check.py)."""
import torch

from tests.utils import TINY_ARCH
from xcit_mm.models.backbones import XCiT
from xcit_mm.visualization.attention import compute_attention


class DeviceTensor(torch.Tensor):
    """Behaves like a tensor on an accelerator: ``.numpy()`` is refused,
    as torch refuses it for CUDA tensors, until ``.cpu()`` copied it."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.numpy:
            raise TypeError("can't convert cuda:0 device type tensor to "
                            'numpy. Use Tensor.cpu() first.')
        out = super().__torch_function__(func, types, args, kwargs or {})
        if func is torch.Tensor.cpu:
            return out.as_subclass(torch.Tensor)
        return out


def test_maps_are_copied_to_the_host():
    model = XCiT(arch=TINY_ARCH, patch_size=16).eval()
    get_maps = model.get_attention_maps

    def on_device(x, layers=None):
        out = get_maps(x, layers)
        out['xca'] = {i: a.as_subclass(DeviceTensor)
                      for i, a in out['xca'].items()}
        out['cls_attn'] = out['cls_attn'].as_subclass(DeviceTensor)
        return out

    model.get_attention_maps = on_device
    res = compute_attention(model, torch.rand(1, 3, 32, 48))
    assert res['grid'] == (2, 3)
    assert res['cls_attn'].shape == (2, 2, 3)
    assert res['xca'][1].shape == (2, 16, 16)
