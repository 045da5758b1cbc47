"""tools/demo.py: the digits preparation, and the whole demo (train + test
through the tools) in a shortened run."""
import json
import os
import os.path as osp

from tests.utils import explain, load_tool, run_tool

demo = load_tool('tools/demo.py')


def test_prepare_digits_split_is_deterministic_and_skipped_once_done(
        tmp_path, capsys):
    root = demo.prepare_digits(str(tmp_path / 'digits'))
    counts = {}
    for split in ('train', 'val'):
        classes = sorted(os.listdir(osp.join(root, split)))
        assert classes == [str(d) for d in range(10)]
        counts[split] = {c: len(os.listdir(osp.join(root, split, c)))
                         for c in classes}
    assert sum(counts['train'].values()) == 1437
    assert sum(counts['val'].values()) == 360
    # stratified: every digit has 35-37 held-out images
    assert all(35 <= n <= 37 for n in counts['val'].values())
    train = {f for c in counts['train']
             for f in os.listdir(osp.join(root, 'train', c))}
    val = {f for c in counts['val']
           for f in os.listdir(osp.join(root, 'val', c))}
    assert not train & val and len(train | val) == 1797
    with open(osp.join(root, 'prepared.json')) as f:
        assert json.load(f)['counts'] == dict(train=1437, val=360)
    capsys.readouterr()
    demo.prepare_digits(root)
    assert 'already prepared' in capsys.readouterr().out


def test_demo_end_to_end_shortened(tmp_path):
    """The README's first command with 1 epoch of a 1-block model: checks
    the plumbing (prepare, train.py, test.py, the printed top-1), not the
    accuracy, which the full run reports."""
    proc = run_tool([
        'tools/demo.py', '--data-root', str(tmp_path / 'digits'),
        '--work-dir', str(tmp_path / 'work'), '--cfg-options',
        'model.backbone.arch.depth=1', 'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1'
    ])
    assert proc.returncode in (0, 1), explain(proc)
    out = proc.stdout
    assert 'Epoch(train) [1][20/23]' in proc.stdout + proc.stderr
    assert '[demo] held-out top-1: ' in out and 'on 360 images' in out
    assert '[demo] time: train' in out
    top1 = float(out.split('[demo] held-out top-1: ')[1].split('%')[0])
    assert (proc.returncode == 0) == (top1 >= 90)
    assert osp.isfile(str(tmp_path / 'work' / 'epoch_1.pth'))
