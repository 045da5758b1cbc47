"""mim packaging: wheels ship configs/ and tools/ in xcit_mm/.mim, editable
installs link them.

Builds run on a copy of the repository in tmp, so the checkout (and its own
editable install) is never touched.
"""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.utils import REPO, make_split_folders

#: Top-level entries that are not part of the source tree.
NOT_SOURCE = {'.git', '.venv', 'build', 'dist', 'work_dirs', 'data',
              '.pytest_cache', 'checkpoints'}


def _ignore(path, names):
    skip = {n for n in names if n in ('__pycache__', '.mim')
            or n.endswith(('.egg-info', '.pyc', '.pth'))}
    if osp.abspath(path) == REPO:
        skip |= NOT_SOURCE & set(names)
    return skip


@pytest.fixture
def source_copy(tmp_path):
    dst = tmp_path / 'src'
    shutil.copytree(REPO, dst, ignore=_ignore, symlinks=True)
    return dst


def _run(cmd, cwd, **kw):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          timeout=300, **kw)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _repo_files(sub, patterns=('*.py', '*.yml', '*.md', '*.sh', '*.txt')):
    out = set()
    for pattern in patterns:
        for f in glob.glob(osp.join(REPO, sub, '**', pattern),
                           recursive=True):
            if '__pycache__' not in f:
                out.add(osp.relpath(f, REPO).replace(os.sep, '/'))
    return out


def test_wheel_ships_configs_and_tools(source_copy, tmp_path):
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
          '--no-build-isolation', '-q', '-w', str(tmp_path / 'dist'), '.'],
         cwd=source_copy)
    wheels = glob.glob(str(tmp_path / 'dist' / 'xcit_mm-*.whl'))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as whl:
        names = set(whl.namelist())
        metadata = whl.read(next(n for n in names
                                 if n.endswith('.dist-info/METADATA'))
                            ).decode()
    mim = {n[len('xcit_mm/.mim/'):] for n in names
           if n.startswith('xcit_mm/.mim/')}
    # every config, every tool, the pins: all of them, nothing stale
    expected = (_repo_files('configs') | _repo_files('tools')
                | _repo_files('requirements'))
    if osp.exists(osp.join(REPO, 'model-index.yml')):
        expected.add('model-index.yml')
    assert expected <= mim, sorted(expected - mim)[:10]
    assert {'tools/train.py', 'tools/test.py',
            'configs/_base_/models/xcit-s12-p16.py'} <= mim
    assert not any('__pycache__' in n for n in mim)
    assert 'xcit_mm/models/backbones/xcit.py' in names
    # setup.py keeps its dependencies and extras
    assert 'Requires-Dist: mmengine' in metadata
    assert 'Provides-Extra: mim' in metadata
    # the licence file travels with the wheel
    assert any(n.endswith('.dist-info/licenses/LICENSE') for n in names)
    # the build wrote the copies into build/, not into the source tree
    assert not osp.exists(source_copy / 'xcit_mm' / '.mim')

    # Installed from the wheel, the tools run from inside the package and
    # find the pins they need next to them.
    site = tmp_path / 'site'
    _run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q',
          '--target', str(site), wheels[0]], cwd=tmp_path)
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = _run([sys.executable,
                 str(site / 'xcit_mm' / '.mim' / 'tools' / 'misc' /
                     'check_env.py')], cwd=tmp_path, env=env)
    assert 'xcit_mm: ' in proc.stdout and str(site) in proc.stdout
    assert 'cannot read the tested versions' not in proc.stdout

    # mim finds the installed wheel's model index, configs and tools (the
    # checkout is not on the path: PYTHONPATH is the wheel's site only)
    mim = [sys.executable, '-m', 'mim']
    proc = _run(mim + ['search', 'xcit_mm'], cwd=tmp_path, env=env)
    assert 'config id: xcit-s12-p16_in1k\n' in proc.stdout, proc.stdout[-2000:]
    data = make_split_folders(str(tmp_path / 'digits'), per_class=2)
    tiny = ['model.backbone.arch.embed_dims=32', 'model.backbone.arch.depth=1',
            'model.backbone.arch.num_heads=2', 'model.head.in_channels=32',
            'model.head.num_classes=2', 'data_preprocessor.num_classes=2',
            'train_cfg.max_epochs=1'] + [
        f'{d}.dataset.data_root={data}'
        for d in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    work = tmp_path / 'work'
    proc = _run(mim + ['train', 'xcit_mm', 'xcit-digits_demo.py',
                       '--work-dir', str(work), '--cfg-options', *tiny],
                cwd=tmp_path, env=dict(env, OMP_NUM_THREADS='1'))
    out = proc.stdout + proc.stderr
    assert f'{site}/xcit_mm/.mim/tools/train.py' in out, out[-2000:]
    assert (work / 'epoch_1.pth').is_file(), out[-2000:]
    proc = _run(mim + ['test', 'xcit_mm', 'xcit-digits_demo.py',
                       '--checkpoint', str(work / 'epoch_1.pth'),
                       '--work-dir', str(work), '--cfg-options', *tiny],
                cwd=tmp_path, env=dict(env, OMP_NUM_THREADS='1'))
    out = proc.stdout + proc.stderr
    assert f'{site}/xcit_mm/.mim/tools/test.py' in out
    assert 'accuracy/top1' in out, out[-2000:]


def test_editable_build_links_configs_and_tools(source_copy, tmp_path):
    """pip install -e (PEP 660) runs build_py in editable mode: symlinks."""
    _run([sys.executable, '-c',
          'import setuptools.build_meta as b; '
          f'b.build_editable({str(tmp_path / "edist")!r})'],
         cwd=source_copy)
    mim = source_copy / 'xcit_mm' / '.mim'
    for name in ('configs', 'tools', 'requirements'):
        assert osp.islink(mim / name), name
        assert osp.samefile(mim / name, source_copy / name)
    assert osp.isfile(mim / 'tools' / 'train.py')
