"""Write the golden-output fixtures that tie xcit_mm to the official code.

    python tools/misc/official_golden.py FAMILY --repo PATH [--out DIR]
    python tools/misc/official_golden.py --list

``FAMILY`` is one of the modules in ``tools/misc/golden/`` (``xcit``,
``crossformer``, ``dino``). ``--repo`` is a git checkout of the official
repository (facebookresearch/xcit, cheerss/CrossFormer or
facebookresearch/dino) at the commit the family module pins; another
commit is refused.
The module builds the official models from that checkout with seeded random
weights (small widths where the official code allows), runs them on seeded
inputs at the sizes real evaluation uses and writes one ``.npz`` per case
to ``--out`` (default ``tests/data/golden``).

Each fixture holds ``param.<official key>`` (the official state dict),
``input.<name>``, ``output.<name>`` and ``meta`` (JSON: repository, commit,
the official constructor arguments, the sizes). The tests read them with
``tests.utils.golden.load_golden`` and compare xcit_mm's outputs within
1e-4 relative. CI never runs this script: it needs the official code, which
is not a dependency. ``tests/data/golden/README.md`` says how to regenerate.
"""
import argparse
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import numpy as np

HERE = osp.dirname(osp.abspath(__file__))
FAMILY_DIR = osp.join(HERE, 'golden')
REPO_ROOT = osp.dirname(osp.dirname(HERE))


def families():
    import glob
    return sorted(
        osp.splitext(osp.basename(p))[0]
        for p in glob.glob(osp.join(FAMILY_DIR, '*.py'))
        if not osp.basename(p).startswith('_'))


def write_golden(path, params, inputs, outputs, meta):
    """Write one fixture: ``params`` (name -> tensor), ``inputs`` and
    ``outputs`` (name -> tensor or array), ``meta`` (JSON-serialisable)."""

    def arr(t):
        if hasattr(t, 'detach'):
            t = t.detach().cpu().numpy()
        return np.array(t, order='C')  # (ascontiguousarray makes 0-d 1-d)

    data = {f'param.{k}': arr(v) for k, v in params.items()}
    data.update({f'input.{k}': arr(v) for k, v in inputs.items()})
    data.update({f'output.{k}': arr(v) for k, v in outputs.items()})
    data['meta'] = np.array(json.dumps(meta, sort_keys=True))
    np.savez_compressed(path, **data)
    return path


def load_family(name):
    path = osp.join(FAMILY_DIR, f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'golden_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('family', nargs='?', choices=families())
    parser.add_argument('--repo', help='checkout of the official repository')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'tests', 'data',
                                                  'golden'))
    parser.add_argument('--list', action='store_true',
                        help='list the families and their pinned commits')
    args = parser.parse_args(argv)
    if args.list or not args.family:
        for name in families():
            module = load_family(name)
            print(f'{name}: {module.REPOSITORY} @ {module.COMMIT}')
        return 0
    if not args.repo or not osp.isdir(args.repo):
        repository = load_family(args.family).REPOSITORY
        print(f'--repo must be a checkout of {repository} '
              f'(got {args.repo!r}).', file=sys.stderr)
        return 1
    module = load_family(args.family)
    head = subprocess.run(['git', '-C', args.repo, 'rev-parse', 'HEAD'],
                          capture_output=True, text=True).stdout.strip()
    if head != module.COMMIT:
        print(f'{args.repo} is at {head or "(not a git checkout)"}; the '
              f'fixtures are pinned to {module.REPOSITORY} at '
              f'{module.COMMIT}: `git -C {args.repo} checkout '
              f'{module.COMMIT}` and run again.', file=sys.stderr)
        return 1
    written = module.generate(osp.abspath(args.repo), args.out, write_golden)
    for path in written:
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
