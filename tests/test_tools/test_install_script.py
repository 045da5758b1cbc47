"""tools/install.sh's options and choice of torch, without installing
(``--dry-run`` prints the plan), and tools/misc/check_env.py on the light
install (mmcv-lite).

PATH holds only what the script needs (``dirname`` and ``python3``) and, to
play a GPU machine, an ``nvidia-smi``; the CPU wheel index is a local HTTP
server (``XCIT_TORCH_CPU_INDEX``, the script's mirror setting).
"""
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading

import pytest

from tests.utils import REPO, free_port

INSTALL = os.path.join(REPO, 'tools', 'install.sh')


@pytest.fixture
def bin_dir(tmp_path):
    path = tmp_path / 'bin'
    path.mkdir()
    os.symlink(shutil.which('dirname'), path / 'dirname')
    os.symlink(sys.executable, path / 'python3')
    return path


@pytest.fixture(scope='module')
def cpu_index(tmp_path_factory):
    """A wheel index that answers (its torch/ page exists)."""
    root = tmp_path_factory.mktemp('index')
    (root / 'torch').mkdir()
    (root / 'torch' / 'index.html').write_text('<html></html>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()


def install(bin_dir, *args, **env):
    """``bash tools/install.sh ARGS`` with PATH = bin_dir only."""
    full = {'PATH': str(bin_dir), 'HOME': os.environ.get('HOME', '/tmp')}
    full.update(env)
    return subprocess.run(['/bin/bash', INSTALL, *args], env=full,
                          capture_output=True, text=True, timeout=60)


def test_options_in_any_order_and_the_torch_index(tmp_path, bin_dir,
                                                  cpu_index):
    # VENV_DIR is a file: a run that went past the plan would fail at once
    venv = tmp_path / 'not_a_dir'
    venv.write_text('')
    plan = f'[install] plan: light install into {venv}; torch==2.14.1 ' \
        'torchvision==0.29.1 from '
    for args in ([str(venv), '--light', '--dry-run'],
                 ['--dry-run', '--light', str(venv)]):
        proc = install(bin_dir, *args, XCIT_TORCH_CPU_INDEX=cpu_index)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == \
            f'{plan}{cpu_index} (no nvidia-smi: the CPU build)'

    closed = f'http://127.0.0.1:{free_port()}'
    proc = install(bin_dir, str(venv), '--light', '--dry-run',
                   XCIT_TORCH_CPU_INDEX=closed)
    assert proc.stdout.strip() == (
        f'{plan}the default index (no nvidia-smi, but {closed} cannot be '
        "reached: the default index's torch (on Linux the CUDA build, "
        '~6 GB))')

    proc = install(bin_dir, str(venv), '--light', '--dry-run',
                   XCIT_TORCH_CPU_INDEX=cpu_index, XCIT_TORCH_INDEX='')
    assert proc.stdout.strip() == f'{plan}the default index ' \
        '(XCIT_TORCH_INDEX)'

    smi = bin_dir / 'nvidia-smi'
    smi.write_text('#!/bin/sh\nexit 0\n')
    smi.chmod(0o755)
    proc = install(bin_dir, '--light', str(venv), '--dry-run',
                   XCIT_TORCH_CPU_INDEX=cpu_index)
    assert proc.stdout.strip() == f'{plan}the default index ' \
        '(nvidia-smi found: the CUDA build)'


def test_bad_arguments_print_the_usage(tmp_path, bin_dir):
    usage = 'usage: bash tools/install.sh [--light] [--dry-run] [VENV_DIR]'
    for args, error in (
            (['--lite', 'venv'], 'install.sh: unknown option --lite'),
            (['venv', 'other', '--dry-run'],
             'install.sh: one VENV_DIR only, got venv and other')):
        proc = install(bin_dir, *args)
        assert proc.returncode == 2
        assert proc.stderr.strip() == f'{error} ({usage})'
        assert proc.stdout == ''


def test_check_env_names_mmcv_lite(tmp_path):
    """The light install's record of mmcv-lite, as pip writes it, and no
    other package (``python -S``: no site-packages)."""
    info = tmp_path / 'mmcv_lite-2.1.0.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: mmcv-lite\nVersion: 2.1.0\n')
    proc = subprocess.run(
        [sys.executable, '-S', os.path.join(REPO, 'tools/misc/check_env.py')],
        env=dict(os.environ, PYTHONPATH=str(tmp_path)), capture_output=True,
        text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'MMCV: 2.1.0 (mmcv-lite, the light install: no compiled ops)' \
        in proc.stdout.splitlines()
    assert 'mmcv-lite 2.1.0 in place of mmcv 2.1.0 with compiled ops (the ' \
        'light install' in proc.stdout
    assert 'NOT INSTALLED' not in proc.stdout.split('MMCV:')[1].split('\n')[0]
