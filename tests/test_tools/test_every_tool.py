"""Every tool in tools/ answers ``--help`` with its usage (exit status 0)
and, run with no arguments, says what it needs: its usage or one paragraph,
never a traceback.

The Python tools run as a user runs them (``runpy`` with ``__main__``), one
after the other in a single child process, so that torch and the OpenMMLab
libraries are imported once (a process per tool took minutes on 2 busy
cores); the shell scripts run as ``bash`` subprocesses from a thread pool.

Run with ``--help`` only, because with no arguments they do a job on
purpose: ``tools/demo.py`` (the README's first command, a whole training
run), ``tools/install.sh`` (installs into ``.venv``),
``tools/misc/gen_metafiles.py`` (rewrites the metafiles),
``tools/misc/official_golden.py`` (lists the fixture families),
``tools/analysis_tools/benchmark.py`` (the default benchmark, minutes),
``tools/analysis_tools/check_leaks.py`` (its default check),
``tools/misc/check_env.py`` and ``tools/analysis_tools/gpu_check.py``
(print a report of this machine; no input is needed).
"""
import glob
import json
import os
import os.path as osp
import stat
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.utils import REPO, explain, run_tool

TOOLS = sorted(
    osp.relpath(p, REPO) for p in
    glob.glob(osp.join(REPO, 'tools', '*.py'))
    + glob.glob(osp.join(REPO, 'tools', '*', '*.py'))
    + glob.glob(osp.join(REPO, 'tools', '*.sh')))
#: Tools that run a job with no arguments (see the module docstring).
RUN_WITHOUT_ARGUMENTS = {'tools/demo.py', 'tools/install.sh',
                         'tools/misc/gen_metafiles.py',
                         'tools/misc/official_golden.py',
                         'tools/analysis_tools/benchmark.py',
                         'tools/analysis_tools/check_leaks.py',
                         'tools/misc/check_env.py',
                         'tools/analysis_tools/gpu_check.py'}

#: Runs each (tool, args) of the JSON list in argv[1] as ``python TOOL
#: ARGS`` would, and prints {tool args: [exit status, stdout, stderr]}.
DRIVER = """
import contextlib, io, json, os, runpy, sys, traceback
out = {}
for tool, args in json.loads(sys.argv[1]):
    o, e = io.StringIO(), io.StringIO()
    sys.argv = [tool] + args
    sys.path[0] = os.path.dirname(os.path.abspath(tool))
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            runpy.run_path(tool, run_name='__main__')
            code = 0
        except SystemExit as x:
            code = x.code if isinstance(x.code, int) else 1
            if x.code is not None and not isinstance(x.code, int):
                print(x.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
    out[' '.join([tool] + args)] = [code, o.getvalue(), e.getvalue()]
print('RESULTS' + json.dumps(out))
"""


class _Proc:
    def __init__(self, code, stdout, stderr):
        self.returncode, self.stdout, self.stderr = code, stdout, stderr


@pytest.fixture(scope='module')
def runs():
    jobs = [(t, ['--help']) for t in TOOLS] + [
        (t, []) for t in TOOLS if t not in RUN_WITHOUT_ARGUMENTS]
    scripts = [j for j in jobs if j[0].endswith('.sh')]
    with ThreadPoolExecutor(max_workers=4) as pool:
        shell = pool.map(lambda j: run_tool(['bash', j[0], *j[1]]), scripts)
        proc = run_tool(['-c', DRIVER, json.dumps(
            [j for j in jobs if j[0].endswith('.py')])], timeout=600)
        shell = list(shell)
    assert 'RESULTS' in proc.stdout, explain(proc)
    results = {k: _Proc(*v) for k, v in json.loads(
        proc.stdout.split('RESULTS', 1)[1]).items()}
    for (tool, args), p in zip(scripts, shell):
        results[' '.join([tool] + args)] = p
    return results


def test_the_list_is_complete():
    assert {'tools/train.py', 'tools/dist_train.sh',
            'tools/model_converters/xcit2mm.py',
            'tools/analysis_tools/get_flops.py'} <= set(TOOLS)
    assert RUN_WITHOUT_ARGUMENTS <= set(TOOLS)


@pytest.mark.parametrize('tool', TOOLS)
def test_help_and_no_arguments(runs, tool):
    proc = runs[f'{tool} --help']
    assert proc.returncode == 0, explain(proc)
    assert 'Traceback' not in proc.stderr, explain(proc)
    assert 'usage' in proc.stdout.lower() or tool in proc.stdout, \
        explain(proc)
    if tool in RUN_WITHOUT_ARGUMENTS:
        return
    proc = runs[tool]
    assert proc.returncode in (1, 2), explain(proc)  # 2: argparse's usage
    assert 'Traceback' not in proc.stderr, explain(proc)
    assert 'unbound variable' not in proc.stderr, explain(proc)
    name = osp.basename(tool)
    assert 'usage:' in proc.stderr or f'{name}: error: ' in proc.stderr, \
        explain(proc)


def test_dist_scripts_name_the_interpreter_without_torch(tmp_path):
    """Outside the venv the `python` on PATH may lack torch: the scripts say
    which interpreter they take and how to choose the venv's."""
    fake = tmp_path / 'python'
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -S -I "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    for tool, args in (('tools/dist_train.sh', ['c.py', '2']),
                       ('tools/dist_test.sh', ['c.py', 'x.pth', '2'])):
        proc = run_tool(['bash', tool, *args], PYTHON=str(fake),
                        PATH=os.environ['PATH'])
        assert proc.returncode == 1, explain(proc)
        err = ' '.join(proc.stderr.split())
        assert f'{osp.basename(tool)}: error: "{fake}" cannot import torch' \
            in err and 'set PYTHON=.venv/bin/python' in err, err
