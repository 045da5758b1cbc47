"""``import xcit_mm`` refuses a torch older than the one it needs, in one
sentence, and the floor is the one requirements/runtime.txt declares."""
import os.path as osp
import re
import subprocess
import sys

from tests.utils import REPO

OLD = ('import torch; torch.__version__ = {v!r}; import xcit_mm; '
       'print("imported")')


def _import_with(version: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', OLD.format(v=version)],
                          cwd=REPO, capture_output=True, text=True,
                          env={'PYTHONPATH': REPO, 'PATH': '/usr/bin:/bin'},
                          timeout=120)


def test_old_torch_is_refused_in_one_sentence():
    proc = _import_with('2.1.2+cu121')
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('ImportError: xcit_mm needs torch >= 2.5 but '
                           'torch 2.1.2+cu121 is installed'), proc.stderr
    assert 'imported' not in proc.stdout


def test_supported_versions_pass():
    import xcit_mm
    for version in ('2.5.0', '2.10.1+cu128', '3.0.0a0'):
        xcit_mm._check_torch(version)
    with __import__('pytest').raises(ImportError, match='torch >= 2.5'):
        xcit_mm._check_torch('2.4.1')


def test_floor_matches_runtime_requirements():
    import xcit_mm
    with open(osp.join(REPO, 'requirements', 'runtime.txt')) as f:
        floor = re.search(r'^torch>=(\d+)\.(\d+)', f.read(), re.M)
    assert tuple(map(int, floor.groups())) == xcit_mm.MIN_TORCH
