"""Parameter and FLOP counts that include the attention matmuls.

Built on mmengine's :class:`~mmengine.analysis.FlopAnalyzer` (fvcore's
``torch.jit.trace`` counter), which counts one multiply-add as one FLOP, as
fvcore, DeiT and the XCiT paper do (so "GFLOPs" here are GMACs; multiply by
2 for a count of multiplies plus adds). Counted: convolutions, linear layers,
every matrix product (XCA's q^ k^T and attn @ v, the class attention's q k^T
and attn @ v), and the affine part of the norms. Not counted: element-wise
ops, activations, softmax and the L2 normalisation (the usual convention).

mmcv's hook-based counter (``mmcv.cnn.get_model_complexity_info`` in mmcv
1.x) sees modules only, so it misses every functional matmul, i.e. all of
XCiT's attention. mmengine's tracer sees ``aten::matmul`` and ``aten::bmm``
but has no handle for ``aten::baddbmm`` or ``aten::scaled_dot_product_
attention`` (timm's attention, for instance): :data:`EXTRA_FLOP_HANDLES`
adds them.
"""
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

#: Operators (mmengine's names) that are products of two activations, i.e.
#: attention, as opposed to a layer's weights applied to an activation.
ATTENTION_OPERATORS = ('matmul', 'bmm', 'baddbmm',
                       'scaled_dot_product_attention', 'einsum')


def _shape(value: Any) -> List[int]:
    return list(value.type().sizes())


def _prod(xs: Sequence[int]) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``baddbmm(input, b1 (n, p, m), b2 (n, m, q))``: n * p * m * q."""
    n, p, m = _shape(inputs[1])
    q = _shape(inputs[2])[-1]
    return n * p * m * q


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``scaled_dot_product_attention(q (..., L, E), k (..., S, E),
    v (..., S, Ev))``: the two products, batch * L * S * (E + Ev)."""
    q, k, v = (_shape(x) for x in inputs[:3])
    return _prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


#: Handles that mmengine 0.10's FlopAnalyzer lacks.
EXTRA_FLOP_HANDLES = {
    'aten::baddbmm': baddbmm_flop_jit,
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
}


def get_model_complexity(
        model: nn.Module,
        input_shape: Optional[Sequence[int]] = (3, 224, 224),
        inputs: Optional[Union[torch.Tensor, Tuple[torch.Tensor,
                                                   ...]]] = None,
        batch_size: int = 1) -> Dict[str, Any]:
    """Count the parameters and FLOPs of one forward pass of ``model``.

    Args:
        model (nn.Module): Called as ``model(*inputs)`` in eval mode.
        input_shape (Sequence[int]): (C, H, W) of a random input when
            ``inputs`` is None. Defaults to (3, 224, 224).
        inputs (Tensor | tuple, optional): The exact inputs instead.
        batch_size (int): Batch of the random input. Defaults to 1.

    Returns:
        dict: ``params`` (int, all parameters of ``model``), ``flops`` (int,
        multiply-adds of the whole forward), ``attention_flops`` (the part
        in :data:`ATTENTION_OPERATORS`), ``by_operator`` (dict), and
        ``uncounted_ops`` (dict: operators seen but not counted, by design
        element-wise ones; anything heavy here is worth a look).
    """
    from mmengine.analysis import FlopAnalyzer
    if inputs is None:
        if input_shape is None:
            raise ValueError('get_model_complexity needs input_shape or '
                             'inputs.')
        param = next(model.parameters(), None)
        device = param.device if param is not None else 'cpu'
        inputs = (torch.randn(batch_size, *input_shape, device=device), )
    elif isinstance(inputs, torch.Tensor):
        inputs = (inputs, )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')  # jit tracer warnings
            analyzer = FlopAnalyzer(model, inputs)
            analyzer.set_op_handle(**EXTRA_FLOP_HANDLES)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            analyzer.tracer_warnings('none')
            flops = analyzer.total()
            by_op = dict(analyzer.by_operator())
            uncounted = dict(analyzer.unsupported_ops())
    finally:
        model.train(was_training)
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        flops=int(flops),
        attention_flops=int(
            sum(v for k, v in by_op.items() if k in ATTENTION_OPERATORS)),
        by_operator={k: int(v)
                     for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        uncounted_ops=uncounted)
