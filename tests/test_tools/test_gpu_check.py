"""tools/analysis_tools/gpu_check.py --cpu: the device check at tiny sizes
(the GPU run is not part of the test suite). The bench section runs
benchmark.py, which tests/test_tools/test_flops_benchmark_tools.py covers
on the CPU; it is skipped here for time."""
import json

from tests.utils import explain, run_tool


def test_gpu_check_cpu_mode(tmp_path):
    out = str(tmp_path / 'check.json')
    proc = run_tool(['tools/analysis_tools/gpu_check.py', '--cpu',
                     '--skip', 'bench', '--out', out], timeout=600)
    assert proc.returncode == 0, explain(proc)
    result = json.load(open(out))
    rows = result['rows']
    sections = {r['section'] for r in rows}
    assert sections == {'parity', 'train', 'misc', 'knn'}
    assert all(r['ok'] for r in rows)
    # 2 token counts x 3 dtypes for XCA + 3 dtypes for the backbone
    assert len([r for r in rows if r['section'] == 'parity']) == 9
    train = [r for r in rows if r['section'] == 'train']
    assert len(train) == 4 and all(r['loss_last'] == r['loss_last']
                                   for r in train)
    assert 'PASS' in proc.stdout and 'section' in proc.stdout.splitlines()[0]
    assert result['env']['cpu_mode'] is True
