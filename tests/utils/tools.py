"""How the tests run the tools as a user does."""
import importlib.util
import os
import os.path as osp
import socket
import subprocess
import sys
from typing import List

#: The repository root.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))



def tool_env(**extra) -> dict:
    """The environment of a tool run: this one with ``PYTHONPATH=REPO``
    first (this checkout shadows any installed xcit_mm),
    ``OMP_NUM_THREADS=1`` (tiny models gain nothing from more threads, and
    on a busy machine spinning OpenMP threads make a step many times
    slower) and ``PYTHON`` = this interpreter (``tools/dist_*.sh`` start
    ``$PYTHON``, and CI does not activate the venv); ``extra`` overrides
    or adds variables."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                  if p])
    env['OMP_NUM_THREADS'] = '1'
    env['PYTHON'] = sys.executable
    env.update(extra)
    return env


def run_tool(args: List[str], timeout: int = 300, cwd: str = REPO,
             **env) -> subprocess.CompletedProcess:
    """``python tools/... args`` (or ``bash tools/...sh args``) as a user
    runs it, in a child process with :func:`tool_env` (``env`` overrides or
    adds variables). A relative ``*.py`` first argument is resolved against
    REPO, so ``cwd`` may be elsewhere; other first arguments (``-c CODE``,
    ``-m MODULE``) go to the interpreter as they are. Output is captured as
    text; the exit status is not checked (``assert proc.returncode == 0,
    explain(proc)``)."""
    args = list(args)
    if args[0] == 'bash':
        cmd = args
    else:
        if args[0].endswith('.py'):
            args[0] = osp.join(REPO, args[0])
        cmd = [sys.executable, *args]
    return subprocess.run(cmd, cwd=cwd, env=tool_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def explain(proc: subprocess.CompletedProcess) -> str:
    """The exit status and the tails of stdout and stderr."""
    return (f'rc={proc.returncode}\n{proc.stdout[-3000:]}\n'
            f'{proc.stderr[-3000:]}')


def load_tool(relpath: str):
    """Import a tool script (``tools/...py``, relative to REPO) as a fresh
    module, to call its ``main(argv)`` in the test process."""
    name = 'tool_' + osp.splitext(relpath)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name,
                                                  osp.join(REPO, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
