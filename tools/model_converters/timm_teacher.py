"""Save a trained timm classifier as a distillation-teacher checkpoint.

    # download through timm (Hugging Face hub) and save, e.g. DeiT's
    # RegNetY-16GF teacher of the *_in1k-dist configs:
    python tools/model_converters/timm_teacher.py regnety_160.deit_in1k \\
        checkpoints/regnety_160_deit_in1k.pth
    # or convert weights you already have (DeiT's regnety_160-a5fe301d.pth,
    # a timm training checkpoint, ...), with timm's own key remapping:
    python tools/model_converters/timm_teacher.py regnety_160 \\
        checkpoints/regnety_160_deit_in1k.pth --src regnety_160-a5fe301d.pth

The output holds the weights in timm's key names under ``state_dict``; it
loads into the teacher config ``dict(type='TimmClassifier',
model_name=...)`` of ``xcit_mm.DistillImageClassifier`` (``teacher_ckpt``).
Every key is checked (timm loads strictly).
"""
import argparse
import os.path as osp

from xcit_mm.cli import run_cli
from xcit_mm.runtime import atomic_torch_save, safe_load
from xcit_mm.utils import strip_common_prefixes, unwrap_checkpoint
from xcit_mm.utils.errors import CheckpointMismatchError, MissingFileError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Save a timm classifier as a teacher checkpoint')
    parser.add_argument('model', help='timm model name, with a pretrained '
                        'tag to download (regnety_160.deit_in1k)')
    parser.add_argument('out', help='output .pth file')
    parser.add_argument('--src', help='convert this local checkpoint '
                        'instead of downloading')
    parser.add_argument('--num-classes', type=int, default=None,
                        help='classes of the weights (default: the '
                        "model's pretrained config)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return run_cli('timm_teacher.py', lambda: convert(args))


def _download_failed(exc: BaseException) -> bool:
    """Whether timm failed to fetch the weights (no network, a proxy, an
    unknown repository), as opposed to a bug."""
    names = {c.__module__.split('.')[0] for c in type(exc).__mro__}
    return bool(names & {'huggingface_hub', 'requests', 'urllib3'}) or \
        isinstance(exc, (ConnectionError, TimeoutError))


def convert(args):
    import timm
    kwargs, overlay = {}, {}
    if args.num_classes is not None:
        # the weights have this many classes too: timm then loads the
        # classifier strictly instead of dropping it
        kwargs['num_classes'] = overlay['num_classes'] = args.num_classes
    if args.src:
        if not osp.isfile(args.src):
            raise MissingFileError(f'--src {args.src!r} does not exist.')
        # timm remaps the keys with the model's own filter (e.g. old RegNet
        # names) and loads strictly
        overlay['state_dict'] = strip_common_prefixes(
            unwrap_checkpoint(safe_load(args.src)), ('module.', ))
    if overlay:
        kwargs['pretrained_cfg_overlay'] = overlay
    try:
        model = timm.create_model(args.model, pretrained=True, **kwargs)
    except RuntimeError as e:  # strict load: missing / unexpected / shapes
        detail = str(e) if len(str(e)) < 1200 else str(e)[:1200] + ' ...'
        raise CheckpointMismatchError(
            f'The weights do not fit timm {args.model!r} (check the model '
            f'name and --num-classes): {detail}') from None
    except Exception as e:  # noqa: B902 - a failed download is explained
        if args.src or not _download_failed(e):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ''
        raise MissingFileError(
            f'The pretrained weights of timm {args.model!r} could not be '
            f'downloaded ({type(e).__name__}: {first[:200]}). Without '
            'network access, fetch the file elsewhere (DeiT\'s teacher: '
            'regnety_160-a5fe301d.pth) and convert it with --src FILE: '
            f'python tools/model_converters/timm_teacher.py '
            f'{args.model.split(".")[0]} {args.out} --src FILE; or set '
            'HF_ENDPOINT / HF_HUB_CACHE to a reachable mirror or cache.'
        ) from None
    state = model.state_dict()
    atomic_torch_save(dict(state_dict=state,
                           meta=dict(timm_model=args.model,
                                     source=args.src or 'timm pretrained')),
                      args.out)
    n = sum(v.numel() for v in state.values())
    print(f'Saved {args.model} ({len(state)} tensors, {n:,} values) to '
          f'{args.out}. Use it as model.teacher_ckpt with the teacher '
          f"dict(type='TimmClassifier', "
          f"model_name='{args.model.split('.')[0]}').")
    return 0


if __name__ == '__main__':
    main()
