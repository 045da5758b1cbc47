"""Official, timm and DINO XCiT checkpoints -> xcit_mm, checked against a
built XCiT (``tools/model_converters/xcit2mm.py``)."""
from collections import OrderedDict
from typing import Dict, Optional, Tuple

from xcit_mm.models.backbones.xcit import XCiT
from xcit_mm.models.utils.xcit_convert import CLS_ONLY, infer_arch, to_xcit_mm
from xcit_mm.utils.errors import CheckpointMismatchError
from xcit_mm.utils.state_dict import compare_state_dicts


def convert_checkpoint(ckpt: dict, backbone_only: bool = False,
                       key: Optional[str] = None) -> Tuple[Dict, dict]:
    """Convert a loaded checkpoint into an xcit_mm state dict, checked.

    The architecture is read off the weight shapes, an XCiT of that
    architecture is built, and every key must match it exactly.

    Args:
        ckpt (dict): A loaded official / timm / DINO / xcit_mm checkpoint.
        backbone_only (bool): Keep only what a dense (det/seg) backbone has:
            no class token, class attention, final norm or head.
        key (str, optional): Wrapper entry to read (e.g. ``'model_ema'``).

    Returns:
        tuple: ``{'backbone.*': ..., 'head.fc.*': ...}`` and a report dict
        with the source format, the architecture and the counts.

    Raises:
        CheckpointMismatchError: keys missing from or unexpected in the
            checkpoint, or of another shape.
    """
    backbone, head, fmt = to_xcit_mm(ckpt, key)
    arch = infer_arch(backbone)
    model = XCiT(arch=arch['arch'], patch_size=arch['patch_size'],
                 out_type='featmap' if backbone_only else 'cls_token')
    expected = model.state_dict()
    if backbone_only:
        dropped = [k for k in backbone if CLS_ONLY.match(k)]
        backbone = {k: v for k, v in backbone.items() if k not in dropped}
        dropped += [f'head.{k}' for k in head]
        head = {}
    else:
        dropped = []
    report = compare_state_dicts(expected, backbone)
    # strict: BN counters must be there too
    missing = [k for k in expected if k not in backbone]
    if missing or report['unexpected'] or report['mismatched']:
        raise CheckpointMismatchError(
            f'The checkpoint ({fmt}) does not convert to an XCiT {arch}: '
            f'{len(missing)} missing (e.g. {missing[:4]}), '
            f"{len(report['unexpected'])} unexpected (e.g. "
            f"{report['unexpected'][:4]}), {len(report['mismatched'])} with "
            f"the wrong shape (e.g. {report['mismatched'][:2]}).")
    if head:
        fc_w = head.get('fc.weight')
        if (set(head) - {'fc.weight', 'fc.bias'} or fc_w is None
                or fc_w.shape[1] != arch['arch']['embed_dims']):
            raise CheckpointMismatchError(
                f'Unexpected classification head in the checkpoint: '
                f'{sorted(head)}.')
    state_dict = OrderedDict((f'backbone.{k}', v) for k, v in backbone.items())
    state_dict.update((f'head.{k}', v) for k, v in head.items())
    report = dict(
        source_format=fmt,
        arch=arch,
        converted=len(state_dict),
        backbone_tensors=len(backbone),
        head_tensors=len(head),
        num_classes=int(head['fc.weight'].shape[0]) if head else None,
        missing=0,
        unexpected=0,
        dropped_for_backbone_only=len(dropped))
    return state_dict, report
