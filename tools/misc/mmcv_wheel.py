"""What tools/install.sh asks about mmcv and its wheel cache.

    python tools/misc/mmcv_wheel.py key     # prints the cache key
    python tools/misc/mmcv_wheel.py check VERSION

``key``: the subfolder of the wheel cache for this interpreter and torch,
e.g. ``torch2.14.1-cu13.0-cpython-311``: a compiled mmcv only works with
the torch (ABI), CUDA and Python it was built for, and ``~/.cache`` is often
a home folder shared by the login and GPU nodes of a cluster.

``check``: mmcv VERSION imports with its compiled ops and, when torch has
CUDA and a GPU is visible, runs a CUDA op (a wheel built without CUDA ops
imports fine and fails only when a model first runs on the GPU). Exit
status 0 when usable, 1 with the reason on stderr otherwise.
"""
import sys


def cache_key() -> str:
    import torch
    cuda = torch.version.cuda
    flavour = f'cu{cuda}' if cuda else (
        f'rocm{torch.version.hip}' if torch.version.hip else 'cpu')
    return (f"torch{torch.__version__.split('+')[0]}-{flavour}-"
            f'{sys.implementation.cache_tag}')


def check_ops(version: str) -> str:
    """Empty string when mmcv is usable, else why not."""
    try:
        import mmcv
        import mmcv.ops  # noqa: F401  (loads the compiled extension)
    except Exception as e:  # noqa: B902 (ImportError, OSError: ABI)
        return f'mmcv.ops does not import: {e}'
    if mmcv.__version__ != version:
        return f'mmcv {mmcv.__version__} is installed, not {version}'
    import torch
    if torch.version.cuda and torch.cuda.is_available():
        boxes = torch.tensor([[0., 0., 2., 2.], [0., 0., 2., 2.1]],
                             device='cuda')
        try:
            _, keep = mmcv.ops.nms(boxes, torch.tensor([1., .5],
                                                       device='cuda'), 0.5)
        except Exception as e:  # noqa: B902
            return ('mmcv was built without CUDA ops (or for another CUDA): '
                    f'nms on the GPU fails: {e}')
        if keep.tolist() != [0]:
            return f'mmcv CUDA nms gives {keep.tolist()}, expected [0]'
    return ''


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (['-h'], ['--help']):
        print(__doc__)
        return 0
    if argv[:1] == ['key']:
        print(cache_key())
        return 0
    if argv[:1] == ['check'] and len(argv) == 2:
        why = check_ops(argv[1])
        if why:
            print(why, file=sys.stderr)
            return 1
        return 0
    print('mmcv_wheel.py: error: expected `key` or `check VERSION`.\n'
          + __doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
