"""Attention maps of XCiT: load any XCiT checkpoint, compute and draw them.

XCiT has two kinds of attention worth looking at:

- **class attention** (the last class-attention block): how much the class
  token attends to each patch, one (Hp, Wp) map per head. It exists in
  classification checkpoints (official, timm, xcit_mm) and in the official
  DINO self-supervised backbones, which keep their class-attention blocks;
- **XCA channel attention** (every XCA block): a (d, d) matrix per head,
  d = C / heads, of how each output channel mixes the value channels.

Dense (det/seg) and backbone-only checkpoints have no class-attention
weights; for them only the XCA matrices exist.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from xcit_mm.runtime.checkpoint import safe_load
from xcit_mm.utils.errors import (
    CheckpointMismatchError,
    ConfigError,
    ImageLoadError,
    InputShapeError,
    MissingFileError,
)
from xcit_mm.utils.state_dict import load_checked

#: ImageNet mean / std (RGB, 0-255), used when the config names none.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def find_xcit_cfg(cfg) -> Optional[dict]:
    """The first dict in a (model) config whose ``type`` names XCiT.

    Works for mmpretrain classifiers, mmdet detectors and mmseg segmentors
    (``model.backbone``) and for any wrapper that nests the backbone deeper.
    """
    if isinstance(cfg, dict):
        if str(cfg.get('type', '')).split('.')[-1] == 'XCiT':
            return cfg
        for value in cfg.values():
            found = find_xcit_cfg(value)
            if found is not None:
                return found
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            found = find_xcit_cfg(value)
            if found is not None:
                return found
    return None


def normalization_from_cfg(cfg) -> Tuple[Tuple[float, ...], Tuple[float,
                                                                   ...]]:
    """(mean, std) in RGB 0-255 order from a config's data preprocessor.

    Looks at ``model.data_preprocessor`` (mmdet, mmseg) and the top-level
    ``data_preprocessor`` (mmpretrain). Defaults to the ImageNet values.
    """
    for prep in (cfg.get('model', {}).get('data_preprocessor'),
                 cfg.get('data_preprocessor')):
        if isinstance(prep, dict) and prep.get('mean') is not None:
            return tuple(prep['mean']), tuple(prep['std'])
    return IMAGENET_MEAN, IMAGENET_STD


def extract_backbone_state(ckpt: dict, key: Optional[str] = None
                           ) -> Tuple[Dict[str, torch.Tensor], Dict, str]:
    """Backbone weights in xcit_mm's layout from any XCiT checkpoint.

    Accepts xcit_mm classifiers, detectors and segmentors (``backbone.*``),
    backbone-only files, official, timm and DINO files, and full DINO
    training checkpoints when ``key`` names the wrapper (``'teacher'``):
    an official one (``ckpt['teacher']``) or one of an xcit_mm DINO run
    (``teacher.*`` keys of its state dict).

    Returns:
        tuple: (backbone dict, head dict, source format).
    """
    from xcit_mm.models.backbones.xcit_convert import to_xcit_mm
    return to_xcit_mm(ckpt, key)


def has_class_attention(backbone: Dict[str, torch.Tensor]) -> bool:
    """Whether the weights include the class token and class attention."""
    return 'cls_token' in backbone and any(
        k.startswith('cls_attn_blocks.') for k in backbone)


def build_xcit_from_checkpoint(cfg, checkpoint: str,
                               key: Optional[str] = None):
    """Build the config's XCiT and load a checkpoint into it, checked.

    The backbone is built in classification mode (class token and class
    attention) when the checkpoint has those weights, else in dense mode.

    Args:
        cfg (Config): A config whose model contains an XCiT backbone.
        checkpoint (str): Any XCiT checkpoint (see
            :func:`extract_backbone_state`).
        key (str, optional): Wrapper entry of the checkpoint to read, e.g.
            ``'teacher'`` for a DINO training checkpoint. Defaults to the
            usual ``state_dict`` / ``model`` / ``model_ema``.

    Returns:
        tuple: (model in eval mode, info dict with ``format``,
        ``class_attention`` (bool) and ``num_classes`` (int or None)).

    Raises:
        ConfigError: No XCiT in the config.
        CheckpointMismatchError: Not an XCiT checkpoint, or one of another
            architecture (missing tensors or other shapes); the message
            names the checkpoint's arch.
        CheckpointError: An unreadable or unsafe file.
    """
    from xcit_mm.models.backbones.xcit import XCiT
    from xcit_mm.models.backbones.xcit_convert import infer_arch

    xcit_cfg = find_xcit_cfg(cfg.get('model', cfg))
    if xcit_cfg is None:
        raise ConfigError('The config has no XCiT backbone (no dict with '
                         "type='xcit_mm.XCiT' under `model`): this tool "
                         'visualises XCiT attention only.')
    backbone, head, fmt = extract_backbone_state(safe_load(checkpoint), key)
    with_cls = has_class_attention(backbone)
    kwargs = {
        k: v
        for k, v in dict(xcit_cfg).items()
        if k not in ('type', 'init_cfg', 'out_type', 'out_indices',
                     'drop_path_rate', 'drop_rate', 'attn_drop_rate',
                     'with_cp', 'frozen_stages', 'norm_cfg')
    }
    # BN and SyncBN hold the same weights and agree in eval mode.
    model = XCiT(**kwargs, out_type='cls_token' if with_cls else 'featmap')
    try:  # named in the error, should the weights not fit
        ckpt_arch = infer_arch(backbone)
    except CheckpointMismatchError:
        ckpt_arch = 'unknown'
    # extra keys (an official dense backbone's fpn*) are ignored
    load_checked(
        model, {'state_dict': backbone}, mode='cover', source=repr(checkpoint),
        what=f"the config's XCiT (arch {xcit_cfg.get('arch')}, patch "
        f"{xcit_cfg.get('patch_size', 16)})",
        hint=f'The checkpoint is {ckpt_arch}: use a config of that '
        'architecture.')
    model.eval()
    fc = head.get('fc.weight')
    info = dict(format=fmt, class_attention=with_cls,
                num_classes=None if fc is None else int(fc.shape[0]))
    return model, info


def load_image(path: str, short_side: int, patch_size: int) -> np.ndarray:
    """Read an image as RGB, resize its short side, crop to whole patches.

    The crop trims the bottom / right remainder, so every patch of the
    attention grid covers exactly ``patch_size`` x ``patch_size`` pixels.
    """
    import os.path as osp

    import mmcv
    if not osp.isfile(path):
        raise MissingFileError(f'The image {path} does not exist.')
    img = mmcv.imread(path)  # BGR; None when not an image
    if img is None:
        from xcit_mm.datasets.transforms import describe_unreadable
        raise ImageLoadError(f'Cannot load the image {path}: '
                             f'{describe_unreadable(path)}. Pass a PNG or '
                             'JPEG file.')
    img = mmcv.bgr2rgb(img)
    h, w = img.shape[:2]
    scale = short_side / min(h, w)
    new_w, new_h = max(round(w * scale), patch_size), max(
        round(h * scale), patch_size)
    img = mmcv.imresize(img, (new_w, new_h), interpolation='bicubic')
    return np.ascontiguousarray(img[:new_h - new_h % patch_size, :new_w -
                                    new_w % patch_size])


def to_input(img: np.ndarray, mean: Sequence[float],
             std: Sequence[float], in_channels: int = 3) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> normalised (1, in_channels, H, W) tensor.

    A 1-channel model (e.g. the digits demo, trained on images read with
    ``color_type='grayscale'``) gets the image's luma, as OpenCV's
    grayscale decoding computes it (0.299 R + 0.587 G + 0.114 B).
    """
    x = torch.from_numpy(img).float().permute(2, 0, 1)  # (3, H, W)
    if in_channels == 1:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        x = (x * luma).sum(0, keepdim=True).round()
    elif in_channels != 3:
        raise InputShapeError(
            f'This tool draws RGB or grayscale images; the XCiT of the '
            f'config takes {in_channels} input channels.')
    mean, std = list(mean), list(std)
    if len(mean) == 1 and in_channels == 3:
        mean, std = mean * 3, std * 3
    if len(mean) != in_channels or len(std) != in_channels:
        raise InputShapeError(
            f'The config normalises {len(mean)} channel(s) (data_preprocessor'
            f' mean={mean}) but its XCiT takes {in_channels}: make '
            'data_preprocessor.mean / std one value per input channel.')
    x = (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(
        -1, 1, 1)
    return x[None]


@torch.no_grad()
def compute_attention(model, x: torch.Tensor,
                      layers: Optional[Sequence[int]] = None) -> Dict:
    """Run :meth:`XCiT.get_attention_maps` and reshape for drawing.

    Returns:
        dict: ``'xca'``: {block index: (h, d, d) ndarray}; ``'grid'``:
        (Hp, Wp); and with class attention ``'cls_attn'``: (h, Hp, Wp)
        ndarray (the class token's weights over the patches).
    """
    out = model.get_attention_maps(x, layers)
    Hp, Wp = out['grid']
    result = dict(grid=(Hp, Wp),
                  xca={i: a[0].float().cpu().numpy()
                       for i, a in out['xca'].items()})
    if 'cls_attn' in out:
        # (B, h, N) -> (h, Hp, Wp) for the first image
        result['cls_attn'] = out['cls_attn'][0].reshape(
            -1, Hp, Wp).float().cpu().numpy()
    return result


def overlay(img: np.ndarray, attn: np.ndarray, alpha: float = 0.5
            ) -> np.ndarray:
    """Draw a (Hp, Wp) attention map over an RGB image as a jet heat map.

    Each patch's weight covers its own pixels (nearest upsampling); the map
    is min-max normalised. Returns an RGB image of the image's size.
    """
    from mmengine.visualization.utils import convert_overlay_heatmap
    H, W = img.shape[:2]
    Hp, Wp = attn.shape
    if H % Hp or W % Wp:
        raise ValueError(f'Image {H}x{W} is not a whole number of patches '
                         f'of the {Hp}x{Wp} attention grid.')
    up = np.repeat(np.repeat(attn, H // Hp, axis=0), W // Wp, axis=1)
    return convert_overlay_heatmap(up.astype(np.float32), img, alpha)


def _figure_to_rgb(fig) -> np.ndarray:
    from mmengine.visualization.utils import img_from_canvas
    fig.canvas.draw()
    return img_from_canvas(fig.canvas)


def draw_cls_attention_grid(img: np.ndarray, cls_attn: np.ndarray,
                            alpha: float = 0.5) -> np.ndarray:
    """One labelled picture: the input, each head's map and their mean."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [('input', img)]
    panels += [(f'head {i}', overlay(img, a, alpha))
               for i, a in enumerate(cls_attn)]
    panels.append(('mean of heads', overlay(img, cls_attn.mean(0), alpha)))
    rows = math.ceil(len(panels) / 6)  # at most 6 panels a row
    cols = math.ceil(len(panels) / rows)
    panel_h = 3 * img.shape[0] / img.shape[1]  # 3-inch wide panels
    fig, axes = plt.subplots(rows, cols,
                             figsize=(3 * cols, (panel_h + 0.4) * rows + 0.5),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for ax, (title, panel) in zip(axes.flat, panels):
        ax.imshow(panel)
        ax.set_title(title, fontsize=10)
    fig.suptitle('XCiT class attention (last class-attention block)')
    fig.tight_layout()
    out = _figure_to_rgb(fig)
    plt.close(fig)
    return out


def draw_xca_matrices(xca: np.ndarray, block: int) -> np.ndarray:
    """Heat maps of one block's (h, d, d) channel-attention matrices."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    h, d, _ = xca.shape
    cols = min(h, 4)
    rows = math.ceil(h / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1, 3.2 * rows),
                             squeeze=False, layout='constrained')
    vmax = float(xca.max())
    for ax in axes.flat:
        ax.axis('off')
    for i, (ax, a) in enumerate(zip(axes.flat, xca)):
        ax.axis('on')
        im = ax.imshow(a, cmap='viridis', vmin=0.0, vmax=vmax,
                       interpolation='nearest')
        ax.set_title(f'head {i}', fontsize=10)
        ax.set_xlabel('key channel', fontsize=8)
        if i % cols == 0:
            ax.set_ylabel('query channel', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(f'XCA channel attention, block {block} '
                 f'({h} heads, {d}x{d}, rows sum to 1)')
    out = _figure_to_rgb(fig)
    plt.close(fig)
    return out


def resolve_layers(layers: Optional[Sequence[int]], depth: int) -> List[int]:
    """Normalise (possibly negative) block indices and check the range."""
    from xcit_mm.models.utils.arch import normalize_out_indices
    if not layers:
        return []
    return sorted(set(normalize_out_indices(layers, depth, '--layers')))
