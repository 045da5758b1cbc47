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


# --------------------------------------------------------------------------
# FLOPs of a config's model: the one definition of get_flops.py,
# gen_metafiles.py and the model-zoo tables.

#: The FLOP definition, stated beside every table (README, metafiles).
FLOPS_DEFINITION = (
    'FLOPs: one forward pass of one image at the config\'s own input size '
    '(classification: the test crop; Mask R-CNN: 800x1333 padded to '
    '800x1344; ADE20k: the 512x512 crop), one multiply-add = one FLOP, '
    'attention matmuls included, counted by '
    'xcit_mm.utils.flops.count_config_flops. Counted: classifiers '
    'backbone + neck + head; segmentors backbone + neck + decode head '
    '(not the auxiliary head); Mask R-CNN backbone + neck + RPN head, '
    'without the RoI box and mask heads, whose cost depends on the number '
    'of proposals; the data preprocessor and a distillation teacher are '
    'never counted.')

#: Libraries whose registries build a config's model.
SCOPES = ('mmpretrain', 'mmdet', 'mmseg')

#: The submodules each kind of model runs (for the parameter count).
PARTS = {
    'classifier': ('backbone', 'neck', 'head'),
    'segmentor': ('backbone', 'neck', 'decode_head'),
    'two-stage detector': ('backbone', 'neck', 'rpn_head'),
    'single-stage detector': ('backbone', 'neck', 'bbox_head'),
    'backbone': ('backbone', ),
}

#: What each kind counts, in words.
COUNTED = {
    'classifier': 'backbone + neck + head',
    'segmentor': 'backbone + neck + decode head (auxiliary head not counted)',
    'two-stage detector': 'backbone + neck + RPN head (RoI heads not '
    'counted: their cost depends on the number of proposals)',
    'single-stage detector': 'backbone + neck + bbox head',
    'backbone': 'backbone only',
}


def config_scope(cfg: Any) -> str:
    """The library that builds ``cfg.model``: the config's default_scope,
    else the first of mmpretrain / mmdet / mmseg that knows the type."""
    import importlib

    from xcit_mm.utils.errors import ConfigError
    if cfg.get('default_scope'):
        return cfg.default_scope
    model_type = cfg.model.get('type', '')
    if '.' in model_type:
        return model_type.split('.')[0]
    for scope in SCOPES:
        try:
            registry = importlib.import_module(f'{scope}.registry').MODELS
        except ImportError:
            continue
        if registry.get(model_type) is not None:
            return scope
    raise ConfigError(
        f'No library among {SCOPES} has a model type {model_type!r}. Set '
        '`default_scope` in the config (e.g. default_scope = "mmdet").')


def build_config_model(cfg: Any) -> Tuple[nn.Module, str]:
    """Build ``cfg.model`` (with the top-level ``data_preprocessor``, as the
    Runner does) in its library's registry; return it and the scope."""
    import importlib

    from mmengine.registry import DefaultScope

    from xcit_mm.utils.errors import ConfigError
    if 'model' not in cfg:
        raise ConfigError('The config has no `model` entry; pass a model or '
                          'full training config.')
    scope = config_scope(cfg)
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(model_cfg), scope


def config_input_shape(cfg: Any) -> Tuple[int, int, int]:
    """(C, H, W) at which a config's model is counted: its own input size.

    Detection: the 800x1333 test scale padded to the data preprocessor's
    ``pad_size_divisor`` (800x1344 for 32); segmentation: the crop (the
    data preprocessor's ``size``, else ``crop_size``); classification: the
    test pipeline's crop (else its resize scale); self-supervised configs
    without a test pipeline (DINO): the crop of the first view of the
    training pipeline's ``MultiView`` (DINO's global crop); otherwise
    224x224. C is the backbone's ``in_channels`` (3 unless the config says
    otherwise). ``get_flops.py`` counts at this size and
    ``visualize_attention.py`` resizes to its short side.
    """
    model = cfg.get('model') or {}
    channels = int((model.get('backbone') or {}).get('in_channels', 3))
    prep = model.get('data_preprocessor') or {}
    scope = cfg.get('default_scope')
    if scope == 'mmdet':
        # the test Resize scale (1333, 800): long side x short side, as a
        # landscape image
        scale = next((t['scale'] for t in _pipeline(cfg)
                      if t.get('type', '').split('.')[-1] == 'Resize'
                      and 'scale' in t), (1333, 800))
        if isinstance(scale[0], (list, tuple)):  # several scales: the first
            scale = scale[0]
        w, h = max(scale), min(scale)
        div = prep.get('pad_size_divisor', 1)
        return (channels, -(-int(h) // div) * div, -(-int(w) // div) * div)
    if scope == 'mmseg' or prep.get('size') is not None:
        # the crop: the preprocessor pads every image to it
        crop = prep.get('size') or cfg.get('crop_size') or next(
            (t['crop_size'] for t in _pipeline(cfg, 'train_dataloader')
             if 'crop_size' in t), None)
        if crop is not None:
            h, w = (crop, crop) if isinstance(crop, int) else crop
            return (channels, int(h), int(w))
    # self-supervised configs (DINO) have no test pipeline: the first view
    # of the training pipeline's MultiView, DINO's global crop
    views = [t['transforms'][0] for t in _pipeline(cfg, 'train_dataloader')
             if t.get('type', '').split('.')[-1] == 'MultiView'
             and t.get('transforms')]
    for pipeline in (_pipeline(cfg), *views):
        for key in ('crop_size', 'scale'):
            for t in pipeline:
                if isinstance(t, dict) and key in t:
                    v = t[key]
                    h, w = (v, v) if isinstance(v, int) else (v[1], v[0])
                    return (channels, int(h), int(w))
    return (channels, 224, 224)


def _pipeline(cfg: Any, *loaders: str) -> List[dict]:
    for loader in loaders or ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        while 'pipeline' not in dataset and isinstance(
                dataset.get('dataset'), dict):  # wrapped data sets
            dataset = dataset['dataset']
        pipeline = dataset.get('pipeline')
        if pipeline:
            return [t for t in pipeline if isinstance(t, dict)]
    return []


def model_kind(model: nn.Module, scope: str, backbone_only: bool) -> str:
    """Which part of ``model`` is counted (a key of :data:`PARTS`)."""
    from xcit_mm.utils.errors import ConfigError
    if backbone_only:
        if not hasattr(model, 'backbone'):
            raise ConfigError(
                'backbone_only=True: this model has no backbone.')
        return 'backbone'
    if scope == 'mmpretrain' and hasattr(model, 'extract_feat'):
        return 'classifier'
    if hasattr(model, 'decode_head'):
        return 'segmentor'
    if hasattr(model, 'roi_head') and hasattr(model, 'rpn_head'):
        return 'two-stage detector'
    if hasattr(model, 'bbox_head') and hasattr(model, 'extract_feat'):
        return 'single-stage detector'
    if hasattr(model, 'backbone'):
        return 'backbone'
    raise ConfigError(f'Cannot tell which part of a {type(model).__name__} '
                      'to count: it has no backbone.')


class CountedPart(nn.Module):
    """``forward(x)`` runs the part of ``model`` that is counted."""

    def __init__(self, model: nn.Module, kind: str):
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(self, x: torch.Tensor):
        m = self.model
        if self.kind == 'backbone':
            return m.backbone(x)
        if self.kind in ('classifier', 'segmentor'):
            return m(x, mode='tensor')
        feats = m.extract_feat(x)
        if self.kind == 'two-stage detector':
            return feats, m.rpn_head(feats)
        if self.kind == 'single-stage detector':
            return feats, m.bbox_head(feats)
        raise ValueError(self.kind)  # pragma: no cover


def count_config_flops(cfg: Any, shape: Optional[Sequence[int]] = None,
                       backbone_only: bool = False,
                       model: Optional[nn.Module] = None) -> Dict[str, Any]:
    """FLOPs and parameters of a config's model, by :data:`FLOPS_DEFINITION`.

    Args:
        cfg (Config): A config with a ``model``.
        shape (Sequence[int], optional): (H, W); defaults to the config's
            own input size (:func:`config_input_shape`).
        backbone_only (bool): Count the backbone alone.
        model (nn.Module, optional): The model already built from ``cfg``.

    Returns:
        dict: :func:`get_model_complexity`'s ``flops``,
        ``attention_flops``, ``by_operator`` and ``uncounted_ops``, plus
        ``model``, ``scope``, ``kind``, ``counted`` (in words),
        ``input_shape`` (1, C, H, W), ``params_counted`` (the counted parts)
        and ``params_model`` (the whole model).
    """
    if model is None:
        model, scope = build_config_model(cfg)
    else:
        scope = config_scope(cfg)
    kind = model_kind(model, scope, backbone_only)
    channels, h, w = config_input_shape(cfg)
    backbone = getattr(model, 'backbone', None)
    channels = int(getattr(backbone, 'in_channels', channels))
    if shape is not None:
        h, w = shape
    result = get_model_complexity(CountedPart(model, kind), (channels, h, w))
    params = {
        p
        for name in PARTS[kind] if getattr(model, name, None) is not None
        for p in getattr(model, name).parameters()
    }  # a set: a shared parameter counts once
    result.pop('params')
    result.update(
        model=type(model).__name__, scope=scope, kind=kind,
        counted=COUNTED[kind], input_shape=[1, channels, int(h), int(w)],
        params_counted=sum(p.numel() for p in params),
        params_model=sum(p.numel() for p in model.parameters()))
    return result
