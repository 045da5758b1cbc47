"""DINO's weighted k-nearest-neighbour evaluation of frozen features.

``weighted_knn`` is the classifier; ``extract_features`` runs a frozen
backbone over a data loader in every process and gathers the features in
data-set order; :func:`evaluate_knn` does both, as the offline k-NN
evaluation (``tools/analysis_tools/knn_eval.py``) and
:class:`xcit_mm.engine.KNNEvalHook` run it.

In a process group each process extracts the features of its shard of the
data set; the shards are exchanged as fixed-size tensors (padded to the
largest shard, with each row's data-set index), so what crosses between
processes is the features themselves. The vote then runs once, split over
the queries: each process votes for its share and the hit counts are
summed. Everything stays on the device the backbone ran on (the GPU in a
GPU run), and the similarity matrix is computed in blocks of bounded size.
"""
from typing import Dict, Iterable, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_gather, all_reduce, get_dist_info

from xcit_mm.utils.errors import ConfigError, InputShapeError

#: DINO's k values; k = 20 is the one reported.
DEFAULT_KS = (10, 20, 100, 200)

#: Largest similarity block (queries x training images) held at once.
MAX_BLOCK_BYTES = 256 * 2**20


@torch.no_grad()
def weighted_knn(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 test_feats: torch.Tensor,
                 test_labels: torch.Tensor,
                 ks: Sequence[int] = DEFAULT_KS,
                 temperature: float = 0.07,
                 num_classes: Optional[int] = None,
                 chunk_size: Optional[int] = None,
                 distributed: bool = False) -> Dict[int, Tuple[float, float]]:
    """Top-1 / top-5 accuracy (%) of DINO's weighted k-NN vote.

    Features are L2-normalised; each test image takes its ``k`` most
    cosine-similar training images, which vote for their label with weight
    ``exp(similarity / temperature)``; the class with the largest summed
    weight is the prediction; top-5 counts a hit among the first
    ``min(5, k)`` classes that got a vote. Ties go to the lower class
    index. A ``k`` above the number of training images uses them all.
    The vote runs on the device of ``train_feats``.

    Args:
        train_feats (Tensor): (N, C) training features.
        train_labels (Tensor): (N,) integer labels.
        test_feats (Tensor): (M, C) test features.
        test_labels (Tensor): (M,) integer labels.
        ks (Sequence[int]): Neighbour counts. Defaults to (10, 20, 100, 200).
        temperature (float): Defaults to 0.07.
        num_classes (int, optional): Defaults to ``max(labels) + 1``.
        chunk_size (int, optional): Test images per similarity block.
            Defaults to as many as keep the (chunk, N) block within
            :data:`MAX_BLOCK_BYTES`.
        distributed (bool): Every process of the process group calls this
            with the same features; each votes for its share of the test
            images and the hits are summed over the processes. Defaults to
            False (this process votes for all).

    Returns:
        dict: ``{k: (top1, top5)}`` in percent.
    """
    if train_feats.dim() != 2 or test_feats.dim() != 2 or \
            train_feats.shape[1] != test_feats.shape[1]:
        raise InputShapeError(
            'weighted_knn needs (N, C) training and (M, C) test features '
            f'of the same width, got {tuple(train_feats.shape)} and '
            f'{tuple(test_feats.shape)}.')
    device = train_feats.device
    train = F.normalize(train_feats.float(), dim=1)
    train_labels = train_labels.long().to(device)
    test_labels = test_labels.long().to(device)
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    if chunk_size is None:
        chunk_size = max(1, MAX_BLOCK_BYTES // (4 * max(1, len(train))))
    num_test = len(test_feats)
    rank, world_size = get_dist_info() if distributed else (0, 1)
    # this process's share of the queries (contiguous, in order)
    share = torch.arange(num_test).tensor_split(world_size)[rank]
    hits = torch.zeros(len(ks), 2, dtype=torch.long, device=device)
    for block in share.split(chunk_size):
        if not len(block):
            continue
        first, last = int(block[0]), int(block[-1]) + 1
        test = F.normalize(test_feats[first:last].float().to(device), dim=1)
        hits += _vote_hits(train, train_labels, test,
                           test_labels[first:last], ks, temperature,
                           num_classes)
    if world_size > 1:
        all_reduce(hits)  # sum over the processes' shares
    return {k: (float(h[0]) * 100 / num_test, float(h[1]) * 100 / num_test)
            for k, h in zip(ks, hits.cpu())}


def _vote_hits(train: torch.Tensor, train_labels: torch.Tensor,
               test: torch.Tensor, targets: torch.Tensor, ks: Sequence[int],
               temperature: float, num_classes: int) -> torch.Tensor:
    """(len(ks), 2) top-1 / top-5 hit counts of normalised test images."""
    max_k = min(max(ks), len(train))
    sims, idx = (test @ train.T).topk(max_k, dim=1)  # sorted, (B, k)
    neighbours = train_labels[idx]  # (B, k)
    weights = (sims / temperature).exp()
    hits = []
    for k in ks:
        k_eff = min(k, max_k)
        votes = torch.zeros(len(test), num_classes, device=test.device)
        votes.scatter_add_(1, neighbours[:, :k_eff], weights[:, :k_eff])
        # a stable sort: equal votes rank the lower class first
        values, top = votes.sort(dim=1, descending=True, stable=True)
        n_top = min(5, num_classes)
        # a class without a vote is never a hit, whatever its rank
        hit = (top[:, :n_top] == targets[:, None]) & (values[:, :n_top] > 0)
        hits.append(torch.stack([hit[:, 0].sum(),
                                 hit[:, :min(5, k_eff)].any(1).sum()]))
    return torch.stack(hits)


@torch.no_grad()
def extract_features(
        backbone: nn.Module, data_preprocessor: nn.Module,
        dataloader: Iterable) -> Tuple[torch.Tensor, torch.Tensor]:
    """Class-token features and labels of a whole data set, in its order.

    The backbone runs in eval mode (restored afterwards); its last output
    must be a (B, C) feature. In multi-process runs each process handles
    its shard (``DefaultSampler``); the shards are exchanged with one
    ``all_gather`` of fixed-size tensors (each padded to the largest
    shard) and every process gets the whole result. A sample is placed by
    its ``sample_idx`` (kept by ``PackInputs``); the duplicates that the
    sampler adds to even out the shards are dropped.

    Returns:
        tuple: (N, C) float32 features and (N,) labels, on the device the
        backbone's output is on.
    """
    was_training = backbone.training
    backbone.eval()
    feats, labels, indices = [], [], []
    try:
        for data in dataloader:
            data = data_preprocessor(data, False)
            inputs = data['inputs']
            if isinstance(inputs, (list, tuple)):
                # pseudo_collate: a list of (C, H, W) images; default_collate
                # of one view: a list holding the (B, C, H, W) batch
                inputs = torch.stack(inputs) if inputs[0].dim() == 3 \
                    else inputs[0]
            out = backbone(inputs)
            if isinstance(out, (tuple, list)):
                out = out[-1]
            feats.append(out.float())
            samples = data['data_samples']
            labels += [int(s.gt_label[0]) for s in samples]
            indices += [s.metainfo.get('sample_idx', -1) for s in samples]
    finally:
        backbone.train(was_training)
    size = len(dataloader.dataset)
    device = feats[0].device if feats else torch.device('cpu')
    feats = torch.cat(feats) if feats else torch.zeros(0, 0, device=device)
    labels = torch.tensor(labels, dtype=torch.long, device=device)
    _, world_size = get_dist_info()
    if world_size == 1 and len(feats) == size:
        return feats, labels  # the loader's order is the data set's
    if -1 in indices:
        raise ConfigError(
            'extract_features needs the sample_idx of every image to put '
            'the shards of several processes together; end the k-NN '
            "pipeline with dict(type='PackInputs') (which keeps it) and "
            'use an mmengine dataset.')
    indices = torch.tensor(indices, dtype=torch.long, device=device)
    parts = [(feats, labels, indices)]
    if world_size > 1:
        parts = _gather_shards(feats, labels, indices)
    whole = feats.new_empty(size, parts[0][0].shape[1])
    whole_labels = labels.new_full((size, ), -1)
    for part_feats, part_labels, part_indices in parts:
        # the sampler's duplicates write equal rows twice
        whole[part_indices] = part_feats.to(device)
        whole_labels[part_indices] = part_labels.to(device)
    if (whole_labels < 0).any():
        missing = int((whole_labels < 0).sum())
        raise ConfigError(
            f'extract_features got no feature for {missing} of {size} '
            'images: the k-NN data loaders must visit every image once '
            "per pass (sampler=dict(type='DefaultSampler', shuffle=False), "
            'no drop_last).')
    return whole, whole_labels


def _gather_shards(feats: torch.Tensor, labels: torch.Tensor,
                   indices: torch.Tensor) -> list:
    """Every process's ``(feats, labels, indices)``, from ``all_gather``
    of tensors padded to the largest shard (torch's collectives exchange
    tensors of one shape)."""
    counts = torch.cat(all_gather(indices.new_tensor([len(feats)])))
    widths = torch.cat(all_gather(indices.new_tensor([feats.shape[1]])))
    longest, width = int(counts.max()), int(widths.max())  # empty shard: 0
    padded = feats.new_zeros(longest, width)
    meta = indices.new_zeros(longest, 2)  # (index, label) per row
    if len(feats):
        padded[:len(feats)] = feats
        meta[:len(feats), 0], meta[:len(feats), 1] = indices, labels
    rows = all_gather(padded)
    del padded
    metas = all_gather(meta)
    return [(f[:n], m[:n, 1], m[:n, 0])
            for f, m, n in zip(rows, metas, counts.tolist())]


class KNNResult(NamedTuple):
    """What :func:`evaluate_knn` returns."""
    #: ``{k: (top1, top5)}`` in percent.
    accuracy: Dict[int, Tuple[float, float]]
    num_train: int
    num_val: int
    dim: int


def evaluate_knn(backbone: nn.Module, data_preprocessor: nn.Module,
                 train_loader: Iterable, val_loader: Iterable,
                 ks: Sequence[int] = DEFAULT_KS,
                 temperature: float = 0.07) -> KNNResult:
    """DINO's weighted k-NN of a frozen backbone: the features of the
    labelled memory bank (``train_loader``) and of the queries
    (``val_loader``), then the vote, split over the processes of a process
    group (every process must call it; every process gets the result).
    """
    train = extract_features(backbone, data_preprocessor, train_loader)
    val = extract_features(backbone, data_preprocessor, val_loader)
    accuracy = weighted_knn(*train, *val, ks=ks, temperature=temperature,
                            distributed=True)
    return KNNResult(accuracy, len(train[0]), len(val[0]),
                     train[0].shape[1])
