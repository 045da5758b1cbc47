"""Importing xcit_mm changes nothing in mmengine: an mmdet or mmseg config
that only uses ``type='xcit_mm.XCiT'`` gets mmengine's checkpoint loaders and
file backends untouched; xcit_mm's runtime is what a config names.

Run in a fresh interpreter: this test process has imported everything
already."""
import subprocess
import sys

from tests.utils import REPO, tool_env

SNAPSHOT = '''
import mmengine.fileio.backends as backends
from mmengine.runner import CheckpointLoader


def snapshot():
    return (dict(CheckpointLoader._schemes), dict(backends.backends),
            dict(backends.prefix_to_backends))


before = snapshot()
{imports}
after = snapshot()
assert before == after, [
    (k, b[k], a.get(k)) for b, a in zip(before, after) for k in b
    if a.get(k) is not b[k]] + [
    k for b, a in zip(before, after) for k in a if k not in b]
print('untouched')
'''


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], cwd=REPO,
                          env=tool_env(), capture_output=True, text=True,
                          timeout=300)


def test_import_leaves_mmengine_loaders_and_backends_as_they_were():
    # everything a config can reach: the package, the models, the runtime
    # and the registries' lazy imports (as building an mmdet backbone does)
    proc = run(SNAPSHOT.format(imports='''
import xcit_mm, xcit_mm.models, xcit_mm.runtime, xcit_mm.engine
import xcit_mm.datasets, xcit_mm.evaluation
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
register_all_modules()
MODELS.build(dict(type='xcit_mm.XCiT', arch=dict(embed_dims=32, depth=1,
                                                 num_heads=2),
                  out_type='featmap'))
'''))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'untouched' in proc.stdout


def test_the_runner_restores_mmengine_loaders_after_a_run():
    """xcit_mm.Runner switches safe loading on for its train / val / test
    calls only (mmengine's loaders are back when they return)."""
    proc = run(SNAPSHOT.format(imports='''
from xcit_mm.runtime import safe_loading
from mmengine.runner import CheckpointLoader
with safe_loading():
    inside = dict(CheckpointLoader._schemes)
assert inside[''] is not before[0][''], 'safe loading was not switched on'
assert inside['https://'] is not before[0]['https://']
assert inside['torchvision://'] is before[0]['torchvision://']
'''))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'untouched' in proc.stdout
