"""Print the environment and whether it is the tested combination.

    python tools/misc/check_env.py

Prints the system, torch and CUDA, mmcv (and whether its compiled ops load),
mmengine, mmpretrain, mmdet, mmseg, timm and xcit_mm versions, then compares
them with the tested stack: the pins of ``requirements/tested.txt`` plus the
torch, torchvision and mmcv versions that ``tools/install.sh`` installs. A
mismatch prints a ``WARNING`` line naming each difference; the exit code is 0
either way (a different stack may well work, it is just not the tested one).
"""
import argparse
import os.path as osp
import re
import sys
from importlib import metadata
from typing import Dict, List, Optional, Tuple

HERE = osp.dirname(osp.abspath(__file__))
#: tools/misc -> repository root (or xcit_mm/.mim in an installed package)
ROOT = osp.dirname(osp.dirname(HERE))
TESTED_TXT = osp.join(ROOT, 'requirements', 'tested.txt')
INSTALL_SH = osp.join(ROOT, 'tools', 'install.sh')

#: Distributions whose mismatch makes the combination untested.
CORE = ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmpretrain', 'mmdet',
        'mmsegmentation', 'timm', 'numpy')


def read_tested_pins(tested_txt: str = TESTED_TXT,
                     install_sh: str = INSTALL_SH) -> Dict[str, str]:
    """``{distribution: version}`` of the tested stack.

    ``requirements/tested.txt`` pins everything but torch, torchvision and
    mmcv, which ``tools/install.sh`` installs first (its ``TORCH_SPEC``
    default and ``MMCV_VERSION``).
    """
    pins = {}
    with open(tested_txt) as f:
        for line in f:
            m = re.match(r'^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s#;]+)', line)
            if m:
                pins[m.group(1).lower()] = m.group(2)
    with open(install_sh) as f:
        text = f.read()
    for name in ('torch', 'torchvision'):
        m = re.search(rf'\b{name}==([0-9][\w.]*)', text)
        if m:
            pins[name] = m.group(1)
    m = re.search(r'^MMCV_VERSION=([0-9][\w.]*)', text, re.M)
    if m:
        pins['mmcv'] = m.group(1)
    missing = [n for n in ('torch', 'torchvision', 'mmcv') if n not in pins]
    if missing:
        raise ValueError(f'{install_sh} names no version for {missing}.')
    return pins


def installed_version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def same_version(installed: str, pinned: str) -> bool:
    """2.14.1+cu130 matches 2.14.1: local build tags are not versions."""
    return installed.split('+')[0] == pinned.split('+')[0]


def installed_mmcv() -> Tuple[Optional[str], Optional[str]]:
    """(distribution, version) of mmcv: ``'mmcv'`` (with compiled ops when
    they load), ``'mmcv-lite'`` (the light install: pure Python, no ops),
    or (None, None). Both install the ``mmcv`` package."""
    for dist in ('mmcv', 'mmcv-lite'):
        version = installed_version(dist)
        if version is not None:
            return dist, version
    return None, None


def mmcv_ops_status() -> str:
    try:
        from mmcv.ops import get_compiler_version, get_compiling_cuda_version
        return (f'compiled ops load (compiler {get_compiler_version()}, '
                f'CUDA ops: {get_compiling_cuda_version()})')
    except Exception as e:  # noqa: BLE001 - any failure means no usable ops
        return f'compiled ops do NOT load ({type(e).__name__}: {e})'


def collect() -> List[Tuple[str, str]]:
    """(name, value) lines describing this environment."""
    import platform
    lines = [('sys.platform', sys.platform),
             ('Python', sys.version.replace('\n', ' '))]
    try:
        import torch
        lines.append(('PyTorch', torch.__version__))
        lines.append(('PyTorch CUDA build', str(torch.version.cuda)))
        lines.append(('CUDA available', str(torch.cuda.is_available())))
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                lines.append((f'GPU {i}', torch.cuda.get_device_name(i)))
    except ImportError:
        lines.append(('PyTorch', 'NOT INSTALLED'))
    lines.append(('machine', platform.machine()))
    for label, dist in (('TorchVision', 'torchvision'),
                        ('MMEngine', 'mmengine'), ('MMCV', 'mmcv'),
                        ('MMPretrain', 'mmpretrain'),
                        ('MMDetection', 'mmdet'),
                        ('MMSegmentation', 'mmsegmentation'),
                        ('timm', 'timm'), ('numpy', 'numpy'),
                        ('OpenCV', 'opencv-python')):
        if dist == 'mmcv':
            mmcv, version = installed_mmcv()
            if mmcv == 'mmcv-lite':
                lines.append((label, f'{version} (mmcv-lite, the light '
                              'install: no compiled ops)'))
                continue
        lines.append((label, installed_version(dist) or 'NOT INSTALLED'))
        if dist == 'mmcv' and installed_version('mmcv'):
            lines.append(('MMCV ops', mmcv_ops_status()))
    try:
        import xcit_mm
        lines.append(('xcit_mm', f'{xcit_mm.__version__} '
                      f'({osp.dirname(xcit_mm.__file__)})'))
    except ImportError as e:
        lines.append(('xcit_mm', f'NOT IMPORTABLE ({e})'))
    return lines


def compare(pins: Dict[str, str]) -> Tuple[List[str], List[str]]:
    """(mismatches of the core stack, other differences)."""
    core, other = [], []
    for dist, pinned in sorted(pins.items()):
        have = installed_version(dist)
        if have is not None and same_version(have, pinned):
            continue
        msg = (f'{dist} {have} (tested {pinned})' if have else
               f'{dist} not installed (tested {pinned})')
        (core if dist in CORE else other).append(msg)
    return core, other


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Print the environment and compare it with the tested '
        'stack')
    parser.add_argument('--tested', default=TESTED_TXT,
                        help='pins file (default requirements/tested.txt)')
    parser.add_argument('--install-sh', default=INSTALL_SH,
                        help='install script naming the torch and mmcv '
                        'versions (default tools/install.sh)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for name, value in collect():
        print(f'{name}: {value}')
    print('-' * 60)
    try:
        pins = read_tested_pins(args.tested, args.install_sh)
    except (OSError, ValueError) as e:
        print(f'WARNING: cannot read the tested versions ({e}); run this '
              'tool from a checkout or an installed xcit_mm.')
        return 0
    core, other = compare(pins)
    mmcv, version = installed_mmcv()
    ops = mmcv_ops_status() if mmcv == 'mmcv' else ''
    if mmcv == 'mmcv-lite':
        core = [m for m in core if not m.startswith('mmcv ')]
        core.append(f'mmcv-lite {version} in place of mmcv {pins["mmcv"]} '
                    'with compiled ops (the light install: classification '
                    'and the demo run; mmdet and mmseg need the ops)')
    elif 'do NOT load' in ops or mmcv is None:
        core.append('mmcv has no compiled ops (mmdet and mmseg need them; '
                    'mmcv-lite is not enough): see tools/install.sh')
    if core:
        print('WARNING: not the tested combination: ' + '; '.join(core) +
              '. `bash tools/install.sh` installs the tested stack.')
    else:
        print('tested combination: yes (torch {torch}, torchvision '
              '{torchvision}, mmcv {mmcv} with ops, and '
              'requirements/tested.txt)'.format(**pins))
    if other:
        print('note: other packages differ from requirements/tested.txt: ' +
              '; '.join(other))
    return 0


if __name__ == '__main__':
    sys.exit(main())
