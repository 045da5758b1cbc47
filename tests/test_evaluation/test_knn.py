"""DINO's weighted k-NN: the classifier against a direct computation of its
formula, and ``knn_eval.py`` split over two processes by torchrun."""
import atexit
import glob
import json
import math
import os
import shutil
import sys

import pytest
import torch

from tests.utils import explain, free_port, make_split_folders, run_tool
from xcit_mm.evaluation import weighted_knn
from xcit_mm.utils.errors import InputShapeError


def knn_by_formula(train, train_labels, test, test_labels, k, temperature,
                   num_classes):
    """One query at a time: cosine similarities, the k largest, each
    neighbour votes exp(sim / T) for its label; top-1 / top-5 in percent
    (ties to the lower class index)."""
    hits1 = hits5 = 0
    for x, y in zip(test.tolist(), test_labels.tolist()):
        sims = []
        for f, label in zip(train.tolist(), train_labels.tolist()):
            dot = sum(a * b for a, b in zip(x, f))
            norm = math.sqrt(sum(a * a for a in x)) * \
                math.sqrt(sum(b * b for b in f))
            sims.append((dot / norm, label))
        sims.sort(key=lambda s: -s[0])
        votes = [0.] * num_classes
        for sim, label in sims[:k]:
            votes[label] += math.exp(sim / temperature)
        ranked = sorted(range(num_classes), key=lambda c: (-votes[c], c))
        hits1 += ranked[0] == y
        hits5 += y in ranked[:min(5, k)] and votes[y] > 0
    return 100. * hits1 / len(test), 100. * hits5 / len(test)


def test_weighted_knn_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    num_classes = 7
    # features that carry some class information, at different scales
    # (only their directions count)
    centres = torch.randn(num_classes, 16, generator=g)
    train_labels = torch.randint(0, num_classes, (60,), generator=g)
    test_labels = torch.randint(0, num_classes, (25,), generator=g)
    scale = torch.rand(60, 1, generator=g) * 5 + 0.1
    train = (centres[train_labels] +
             1.5 * torch.randn(60, 16, generator=g)) * scale
    test = centres[test_labels] + 1.5 * torch.randn(25, 16, generator=g)
    ks = (1, 3, 10, 20, 100)  # 100 > 60: all training images vote
    got = weighted_knn(train, train_labels, test, test_labels, ks=ks,
                       temperature=0.07, num_classes=num_classes,
                       chunk_size=8)  # several similarity blocks
    for k in ks:
        want = knn_by_formula(train, train_labels, test, test_labels,
                              min(k, 60), 0.07, num_classes)
        assert got[k] == pytest.approx(want), k
    # the features are informative, so the test is not trivially 0 or 100
    assert 20 < got[20][0] < 100


def test_weighted_knn_refuses_features_of_different_widths():
    with pytest.raises(InputShapeError, match='same width'):
        weighted_knn(torch.randn(4, 8), torch.zeros(4), torch.randn(2, 6),
                     torch.zeros(2))


#: torch.distributed's collectives that move tensors, and the tensors a
#: process receives from each (its own share included).
COLLECTIVES = dict(
    broadcast=lambda tensor, *a, **k: [tensor],
    all_reduce=lambda tensor, *a, **k: [tensor],
    all_gather=lambda tensor_list, *a, **k: tensor_list,
    all_gather_into_tensor=lambda output, *a, **k: [output],
)


def count_received_bytes(out_file: str) -> None:
    """Add up the bytes this process receives through torch.distributed's
    collectives (``broadcast_object_list`` and ``all_gather_object`` go
    through them), and write the sum to ``out_file`` at exit."""
    import torch.distributed as dist
    import torch.distributed.distributed_c10d as c10d
    total = [0]
    for name, received in COLLECTIVES.items():
        def counted(*args, _real=getattr(c10d, name), _received=received,
                    **kwargs):
            total[0] += sum(t.numel() * t.element_size()
                            for t in _received(*args, **kwargs))
            return _real(*args, **kwargs)
        setattr(c10d, name, counted)
        setattr(dist, name, counted)

    def write():
        with open(out_file, 'w') as f:
            json.dump(total[0], f)
    atexit.register(write)


def test_knn_eval_in_two_processes_equals_one(tmp_path):
    """torchrun with 2 gloo processes (``--launcher pytorch``): each
    extracts its shard and votes for half of the queries, and the result
    equals the single-process one. 13 + 7 images, so the sampler pads both
    shards. What crosses between the processes (counted in torch's
    collectives, which mmengine's object gathering uses too) stays within
    twice the size of the features: the features as tensors, not each
    image's row pickled with its whole batch."""
    root = make_split_folders(str(tmp_path / 'data'), num_classes=2,
                              per_class=4, size=32)
    # odd data-set sizes: 4 + 4 + 5 training images, 4 + 3 val images
    # (copies within a class: equally near neighbours vote alike, so the
    # result does not hang on how rounding breaks their ties)
    for i in range(5):
        shutil.copy(f'{root}/train/class_1/{i % 4}.png',
                    f'{root}/train/class_1/extra_{i}.png')
    os.remove(f'{root}/val/class_1/0.png')
    options = ['--cfg-options', 'model.backbone.arch.depth=1'] + [
        f'{key}.dataset.data_root={root}'
        for key in ('knn_train_dataloader', 'knn_val_dataloader')
    ] + [f'{key}.batch_size=3'
         for key in ('knn_train_dataloader', 'knn_val_dataloader')]
    config = 'configs/dino/dino_xcit-digits_demo.py'
    results = {}
    for nproc in (1, 2):
        out = str(tmp_path / f'knn_{nproc}.json')
        args = [config, '--random-init', '--out', out, '--k', '1', '3',
                '20'] + options
        if nproc == 1:
            proc = run_tool(['tools/analysis_tools/knn_eval.py'] + args)
        else:
            proc = run_tool(
                ['-m', 'torch.distributed.run', '--nproc_per_node=2',
                 f'--master_port={free_port()}',
                 '-m', 'tests.test_evaluation.test_knn'] + args +
                ['--launcher', 'pytorch'], XCIT_MM_CPU='1',
                KNN_BYTES=str(tmp_path / 'received'))
        assert proc.returncode == 0, explain(proc)
        assert '13 train / 7 val images, T=0.07, 96-d features' in \
            proc.stdout, explain(proc)
        with open(out) as f:
            results[nproc] = json.load(f)
    assert results[2] == results[1]
    feature_bytes = (13 + 7) * 96 * 4
    received = []
    for path in sorted(glob.glob(str(tmp_path / 'received*'))):
        with open(path) as f:
            received.append(json.load(f))
    assert len(received) == 2
    assert 0 < max(received) <= 2 * feature_bytes, (received, feature_bytes)


def test_knn_eval_loads_only_a_checkpoint_of_its_model(tmp_path):
    """``load_model`` fills every tensor of the config's DINO from its own
    checkpoint, and refuses one of another depth, naming the keys."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from tests.utils import load_tool
    from xcit_mm.utils.errors import CheckpointMismatchError
    tool = load_tool('tools/analysis_tools/knn_eval.py')
    cfg = Config.fromfile('configs/dino/dino_xcit-digits_demo.py')
    cfg.model.backbone.arch.depth = 1
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    trained = tool.load_model(cfg, None, random_init=True)
    with torch.no_grad():  # unlike the weights that the seed gives
        for p in trained.parameters():
            p.add_(1.)
    path = str(tmp_path / 'dino.pth')
    torch.save({'state_dict': trained.state_dict()}, path)
    loaded = tool.load_model(cfg, path, random_init=False)
    for k, v in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    cfg.model.backbone.arch.depth = 2
    with pytest.raises(CheckpointMismatchError,
                       match=r"does not fit the model of the config: .* "
                       r"missing \(e\.g\. \['backbone\.blocks\.1\."):
        tool.load_model(cfg, path, random_init=False)


if __name__ == '__main__':
    # a process of the two-process test: knn_eval.py, its collectives
    # counted
    count_received_bytes(os.environ['KNN_BYTES'] + os.environ['RANK'])
    from tests.utils import load_tool
    load_tool('tools/analysis_tools/knn_eval.py').main(sys.argv[1:])
