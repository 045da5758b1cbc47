"""ONNX export of xcit_mm models, and onnxruntime beside PyTorch.

What is exported, per task (:func:`xcit_mm.apis.task_of`):

- classification: the classifier, image -> class logits (B, K);
- segmentation: the whole-image segmentor, image -> class logits at the
  input's resolution (B, K, H, W) (the decode head, resized as mmseg's
  ``encode_decode`` does; the auxiliary head is a training aid and is left
  out); the argmax over K is the class map;
- detection: the backbone and the neck, image -> the FPN levels. The
  heads' post-processing (RPN proposals, ``mmcv.ops.nms`` / ``RoIAlign``,
  per-class box decoding with data-dependent instance counts) is not part
  of the graph: run it in PyTorch on the exported features, or use
  mmdeploy where it supports the stack;
- features (DINO): the frozen teacher's backbone, image -> (B, C).

The graph's input is the image as the config's pipeline delivers it to the
model (float32, N x C x H x W, pixel values 0-255 in the loader's channel
order, BGR for mmcv's colour images, already resized); the data
preprocessor's channel flip and normalisation are inside the graph.
"""
import importlib
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from xcit_mm.utils.errors import InputShapeError, MissingDependencyError

DEPLOY_REQUIREMENTS = 'pip install -r requirements/deploy.txt'
#: What ``--verify`` accepts: max |onnx - torch| / max |torch| per output.
RTOL = 1e-4


def require_onnx() -> None:
    """A :class:`MissingDependencyError` naming the install command unless
    onnx, onnxruntime and onnxscript import."""
    missing = []
    for name in ('onnx', 'onnxruntime', 'onnxscript'):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingDependencyError(
            f'ONNX export needs {", ".join(missing)}, which are not '
            f'installed. Install them with: {DEPLOY_REQUIREMENTS} (or '
            "pip install 'xcit_mm[deploy]'; tools/install.sh installs them).")


class Preprocess(nn.Module):
    """The data preprocessor's channel flip and normalisation."""

    def __init__(self, data_preprocessor: nn.Module):
        super().__init__()
        dp = data_preprocessor
        self.flip = bool(getattr(dp, '_channel_conversion', False) or
                         getattr(dp, 'channel_conversion', False))
        normalize = getattr(dp, '_enable_normalize', None)
        if normalize is None:
            normalize = hasattr(dp, 'mean')
        self.register_buffer('mean', dp.mean.clone() if normalize else None)
        self.register_buffer('std', dp.std.clone() if normalize else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip:
            x = x.flip(1)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x


def _symbolic_upsampling(model: nn.Module) -> None:
    """Replace mmseg's ``Upsample`` (Semantic FPN's scale heads) by
    ``nn.Upsample`` with the same scale factor, in place.

    mmseg's computes the output size as ``int(h * scale_factor)``: the
    ``int()`` fixes the size of the example input in the exported graph, so
    another input size gives wrong maps. ``nn.Upsample`` computes the same
    size (floor) inside the graph."""
    from mmseg.models.utils import Upsample
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, Upsample) and not child.size:
                setattr(module, child_name, nn.Upsample(
                    scale_factor=child.scale_factor, mode=child.mode,
                    align_corners=child.align_corners))


class Exportable(nn.Module):
    """``image -> tensors`` of a task's model (see the module docstring)."""

    def __init__(self, model: nn.Module, task: str):
        super().__init__()
        self.task = task
        self.preprocess = Preprocess(model.data_preprocessor)
        if task == 'features':
            teacher = getattr(model, 'teacher', None)
            self.net = teacher['backbone'] if teacher is not None \
                else model.backbone
        else:
            self.net = model
        if task == 'segmentation':
            _symbolic_upsampling(self.net)

    def forward(self, x: torch.Tensor):
        x = self.preprocess(x)
        if self.task == 'classification':
            return self.net(x, mode='tensor')
        if self.task == 'detection':
            return tuple(self.net.extract_feat(x))
        if self.task == 'segmentation':
            logits = self.net.decode_head(self.net.extract_feat(x))
            return F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                                 align_corners=self.net.align_corners)
        feats = self.net(x)
        return feats[-1] if isinstance(feats, (tuple, list)) else feats


def output_names(task: str, num: int) -> List[str]:
    base = dict(classification='logits', segmentation='seg_logits',
                features='features', detection='fpn')[task]
    return [base] if num == 1 else [f'{base}{i}' for i in range(num)]


def input_channels(model: nn.Module) -> int:
    dp = model.data_preprocessor
    if getattr(dp, 'mean', None) is not None:
        return dp.mean.numel()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 3


def size_divisor(model: nn.Module) -> int:
    """The multiple of H and W that the model's preprocessor pads to (1 if
    it does not pad)."""
    dp = model.data_preprocessor
    return int(getattr(dp, 'pad_size_divisor', None) or
               getattr(dp, 'size_divisor', None) or 1)


def check_shape(shape: Sequence[int], divisor: int) -> None:
    if any(s % divisor for s in shape):
        raise InputShapeError(
            f'--shape {shape[0]} {shape[1]}: the model pads its inputs to '
            f'multiples of {divisor} (its data preprocessor); pass a height '
            f'and width that are multiples of {divisor}.')


def example_image(shape: Sequence[int], channels: int, batch: int = 1,
                  seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, *shape, generator=g) * 255


def export_onnx(module: Exportable, example: torch.Tensor, path: str,
                dynamic: bool = False, opset: int = 18) -> List[str]:
    """Export with torch's dynamo exporter; with ``dynamic``, the batch,
    height and width are symbolic. Returns the output names."""
    require_onnx()
    from torch.export import Dim
    with torch.no_grad():
        num = len(_as_list(module(example)))
    names = output_names(module.task, num)
    dynamic_shapes = None
    if dynamic:
        dynamic_shapes = {'x': {0: Dim.DYNAMIC, 2: Dim.DYNAMIC,
                                3: Dim.DYNAMIC}}
    program = torch.onnx.export(
        module, (example, ), dynamo=True, opset_version=opset,
        input_names=['image'], output_names=names,
        dynamic_shapes=dynamic_shapes, verbose=False)
    program.save(path)
    return names


def _as_list(out) -> List[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def ort_session(path: str, threads: Optional[int] = None):
    require_onnx()
    import onnxruntime as ort
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts,
                                providers=['CPUExecutionProvider'])


def max_relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |a - e| / max |e|."""
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).abs().max() /
            expected.abs().max().clamp_min(1e-12)).item()


def verify(module: Exportable, path: str, shapes: Sequence[Tuple[int, int]],
           channels: int, batch: int = 1) -> List[Dict]:
    """Run onnxruntime and PyTorch on the same random images at each shape.

    Returns one row per shape and output: ``shape``, ``output``,
    ``rel_err`` and ``ok`` (``rel_err <= RTOL``)."""
    session = ort_session(path)
    rows = []
    for i, shape in enumerate(shapes):
        x = example_image(shape, channels, batch, seed=i + 1)
        with torch.no_grad():
            expected = _as_list(module(x))
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        for name, e, a in zip(
                [o.name for o in session.get_outputs()], expected, got):
            a = torch.from_numpy(a)
            if tuple(a.shape) != tuple(e.shape):
                err = float('inf')
            else:
                err = max_relative_error(a, e)
            rows.append(dict(shape=tuple(shape), output=name,
                             out_shape=tuple(e.shape), rel_err=err,
                             ok=err <= RTOL))
    return rows
