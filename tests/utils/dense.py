"""Real dense (mmdet / mmseg) configs made cheap for CPU tests."""
import os.path as osp

from tests.utils.configs import load_config
from tests.utils.models import TINY_DENSE_BACKBONE  # noqa: F401
from tests.utils.tools import REPO  # noqa: F401


def _set_in_pipelines(cfg, fn) -> None:
    """Apply fn to every transform dict (nested ones included) of the
    train / val / test pipelines."""
    def visit(obj):
        if isinstance(obj, dict):
            fn(obj)
            for v in obj.values():
                visit(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                visit(v)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        visit(cfg[name].dataset.pipeline)


def tiny_dense_config(config: str, work_dir: str = None,
                      data_root: str = None, checkpoint: str = None,
                      shrink: int = 8, backbone: dict = None,
                      channel_map: dict = None):
    """A real dense config made cheap for a CPU test, structure unchanged.

    The backbone becomes :data:`TINY_DENSE_BACKBONE`; the neck and head
    widths shrink (those equal to the backbone's become 32, as do Mask
    R-CNN's 256-wide FPN and heads and UperNet's heads) and Mask R-CNN
    samples fewer RoIs. Image scales and crops are divided by ``shrink``, the
    data point at ``data_root``, training lasts 1 epoch (detection) or 2
    iterations (segmentation) with one evaluation at the end, and the data
    loaders use no worker processes.

    Args:
        config (str): A config under ``configs/``.
        work_dir (str, optional): The runner's work dir.
        data_root (str, optional): From :func:`make_coco` or
            :func:`make_ade`; None keeps the config's.
        checkpoint (str, optional): A ``--backbone-only`` converted file to
            initialise the backbone with; None trains from scratch.
        shrink (int): Divisor of image scales and crop sizes.
        backbone (dict, optional): Settings that make another backbone
            tiny, instead of :data:`TINY_DENSE_BACKBONE` for XCiT.
        channel_map (dict, optional): {old: new} widths of that backbone's
            outputs, applied to the neck and head inputs first.
    """
    from xcit_mm.models.backbones import resolve_arch
    cfg = load_config(config)
    is_det = cfg.default_scope == 'mmdet'
    model = cfg.model
    tiny = TINY_DENSE_BACKBONE['arch']['embed_dims']

    def narrow(obj, old: int, new: int):
        """Every *channels entry equal to old (or list entry) -> new."""
        if isinstance(obj, dict):
            for key, value in obj.items():
                if not key.endswith('channels'):
                    narrow(value, old, new)
                elif value == old:
                    obj[key] = new
                elif isinstance(value, (list, tuple)) and old in value:
                    obj[key] = [new if c == old else c for c in value]
        elif isinstance(obj, list):
            for o in obj:
                narrow(o, old, new)

    heads = [model.get(k) for k in ('neck', 'decode_head', 'auxiliary_head',
                                     'rpn_head', 'roi_head')]
    if backbone is None:
        channel_map = {resolve_arch(model.backbone.arch)['embed_dims']: tiny}
        backbone = TINY_DENSE_BACKBONE
    for old, new in channel_map.items():
        narrow(heads, old, new)
    model.backbone.update(backbone)
    model.backbone.init_cfg = None if checkpoint is None else dict(
        type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    if not is_det:  # UPerHead's 512 and the auxiliary FCNHead's 256
        narrow(heads, 512, 2 * tiny)
        narrow(heads, 256, tiny)
    if is_det:  # Mask R-CNN's 256-wide FPN and heads, 1024-wide box FCs
        narrow(heads, 256, tiny)
        narrow(heads, 1024, 2 * tiny)
        model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
        model.train_cfg.rcnn.sampler.num = 64
        model.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
        # an untrained head scores every class ~1/81: keep its boxes so the
        # COCO evaluation has detections to score
        model.test_cfg.rcnn.update(score_thr=0., max_per_img=20)

    def small(t):
        for key in ('scale', 'scales', 'crop_size'):
            if key in t:
                t[key] = _shrink_sizes(t[key], shrink)
    _set_in_pipelines(cfg, small)
    if not is_det:
        model.data_preprocessor.size = _shrink_sizes(
            model.data_preprocessor.size, shrink)

    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.num_workers = 0
        loader.persistent_workers = False
        if data_root is not None:
            loader.dataset.data_root = data_root
    cfg.train_dataloader.batch_size = 2
    if is_det:
        if data_root is not None:
            ann = osp.join(data_root, 'annotations',
                           'instances_val2017.json')
            cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = ann
        cfg.train_cfg.update(max_epochs=1, val_interval=1)
        cfg.default_hooks.checkpoint.interval = 1
    else:
        cfg.train_cfg.update(max_iters=2, val_interval=2)
        cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    if work_dir is not None:
        cfg.work_dir = work_dir
    return cfg


def _shrink_sizes(value, k: int):
    """(w, h), [(w, h), ...] -> the same with every side divided by k."""
    if isinstance(value, (list, tuple)) and value and isinstance(
            value[0], (list, tuple)):
        return [_shrink_sizes(v, k) for v in value]
    return tuple(max(16, int(v) // k) for v in value)
