"""tools/demo.py --task dino: the whole self-supervised proof (k-NN before,
DINO pre-training, k-NN after) in a shortened run through the tools."""
import os.path as osp

from tests.utils import explain, run_tool


def test_dino_demo_end_to_end_shortened(tmp_path):
    """1 iteration of a 1-block model on 64 training digits, k-NN on 200 /
    100 images: checks the plumbing, not the accuracy (the full run
    reports that in configs/dino/README.md)."""
    work = tmp_path / 'work'
    proc = run_tool([
        'tools/demo.py', '--task', 'dino', '--data-root',
        str(tmp_path / 'digits'), '--work-dir', str(work), '--cfg-options',
        'model.backbone.arch.depth=1', 'train_cfg.max_epochs=1',
        'train_dataloader.dataset.indices=64',
        'knn_train_dataloader.dataset.indices=200',
        'knn_val_dataloader.dataset.indices=100',
        'custom_hooks.1.train_dataloader.dataset.indices=200',
        'custom_hooks.1.val_dataloader.dataset.indices=100',
        'default_hooks.checkpoint.interval=1'
    ], timeout=900)
    assert proc.returncode in (0, 1), explain(proc)
    out, err = proc.stdout, proc.stderr
    assert 'k-NN top-1 (k=20) at initialisation: ' in out, explain(proc)
    assert 'loss: ' in out + err and 'teacher_entropy: ' in out + err
    assert 'weighted k-NN (teacher, T=0.07) top-1: k=10' in out + err
    assert '[demo] held-out k-NN top-1 (k=20, weighted, teacher): ' in out
    assert '[demo] collapse monitor: 0 warning(s)' in out
    assert 'CPU' in out.split('[demo] time: ')[1]
    after = float(out.split('after DINO pre-training')[0].split('-> ')[-1]
                  .rstrip('% '))
    assert (proc.returncode == 0) == (after >= 95)
    assert osp.isfile(str(work / 'epoch_1.pth'))
    assert osp.isfile(str(work / 'knn_init.json'))
    assert osp.isfile(str(work / 'knn_pretrained.json'))
