"""Run the tools/ scripts as a user does: a child process in the repo."""
import os
import socket
import subprocess
import sys
from typing import List

from tests.conftest import REPO


def tool_env(**extra) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    env['OMP_NUM_THREADS'] = '1'  # tiny models: threads only add overhead
    # tools/dist_*.sh start $PYTHON: the interpreter running the tests, not
    # whatever `python` is first on PATH (CI does not activate the venv)
    env['PYTHON'] = sys.executable
    env.update(extra)
    return env


def run_tool(args: List[str], timeout: int = 300,
             **env) -> subprocess.CompletedProcess:
    """``python tools/...`` (or ``bash tools/...sh``) from the repo root."""
    cmd = args if args[0] == 'bash' else [sys.executable] + args
    return subprocess.run(cmd, cwd=REPO, env=tool_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def explain(proc: subprocess.CompletedProcess) -> str:
    return (f'rc={proc.returncode}\n{proc.stdout[-3000:]}\n'
            f'{proc.stderr[-3000:]}')
