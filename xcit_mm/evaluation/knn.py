"""DINO's weighted k-nearest-neighbour evaluation of frozen features.

``weighted_knn`` is the pure classifier; ``extract_features`` runs a frozen
backbone over a data loader in every process and gathers the features in
data-set order. The offline k-NN evaluation and
:class:`xcit_mm.engine.KNNEvalHook` both use them.
"""
from typing import Dict, Iterable, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import collect_results, get_dist_info

from xcit_mm.utils.errors import InputShapeError

#: DINO's k values; k = 20 is the one reported.
DEFAULT_KS = (10, 20, 100, 200)


@torch.no_grad()
def weighted_knn(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 test_feats: torch.Tensor,
                 test_labels: torch.Tensor,
                 ks: Sequence[int] = DEFAULT_KS,
                 temperature: float = 0.07,
                 num_classes: int = None,
                 chunk_size: int = 1024) -> Dict[int, Tuple[float, float]]:
    """Top-1 / top-5 accuracy (%) of DINO's weighted k-NN vote.

    Features are L2-normalised; each test image takes its ``k`` most
    cosine-similar training images, which vote for their label with weight
    ``exp(similarity / temperature)``; the class with the largest summed
    weight is the prediction; top-5 counts a hit among the first
    ``min(5, k)`` classes that got a vote. Ties go to the lower class
    index. A ``k`` above the number of training images uses them all.

    Args:
        train_feats (Tensor): (N, C) training features.
        train_labels (Tensor): (N,) integer labels.
        test_feats (Tensor): (M, C) test features.
        test_labels (Tensor): (M,) integer labels.
        ks (Sequence[int]): Neighbour counts. Defaults to (10, 20, 100, 200).
        temperature (float): Defaults to 0.07.
        num_classes (int, optional): Defaults to ``max(labels) + 1``.
        chunk_size (int): Test images per similarity block.

    Returns:
        dict: ``{k: (top1, top5)}`` in percent.
    """
    if train_feats.dim() != 2 or test_feats.dim() != 2 or \
            train_feats.shape[1] != test_feats.shape[1]:
        raise InputShapeError(
            'weighted_knn needs (N, C) training and (M, C) test features '
            f'of the same width, got {tuple(train_feats.shape)} and '
            f'{tuple(test_feats.shape)}.')
    train = F.normalize(train_feats.float(), dim=1)
    test = F.normalize(test_feats.float(), dim=1)
    train_labels = train_labels.long().to(train.device)
    test_labels = test_labels.long().to(train.device)
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    max_k = min(max(ks), len(train))
    correct = {k: torch.zeros(2) for k in ks}
    for start in range(0, len(test), chunk_size):
        feats = test[start:start + chunk_size]
        targets = test_labels[start:start + chunk_size]
        sims, idx = (feats @ train.T).topk(max_k, dim=1)  # sorted, (B, k)
        neighbours = train_labels[idx]  # (B, k)
        weights = (sims / temperature).exp()
        for k in ks:
            k_eff = min(k, max_k)
            votes = torch.zeros(len(feats), num_classes, device=train.device)
            votes.scatter_add_(1, neighbours[:, :k_eff], weights[:, :k_eff])
            # a stable sort: equal votes rank the lower class first
            values, top = votes.sort(dim=1, descending=True, stable=True)
            n_top = min(5, num_classes)
            # a class without a vote is never a hit, whatever its rank
            hit = (top[:, :n_top] == targets[:, None]) & \
                (values[:, :n_top] > 0)
            correct[k][0] += hit[:, 0].sum().item()
            correct[k][1] += hit[:, :min(5, k_eff)].any(1).sum().item()
    return {k: (float(c[0]) * 100 / len(test), float(c[1]) * 100 / len(test))
            for k, c in correct.items()}


@torch.no_grad()
def extract_features(
        backbone: nn.Module, data_preprocessor: nn.Module,
        dataloader: Iterable) -> Tuple[torch.Tensor, torch.Tensor]:
    """Class-token features and labels of a whole data set, in its order.

    The backbone runs in eval mode (restored afterwards); its last output
    must be a (B, C) feature. In multi-process runs each process handles
    its shard (``DefaultSampler``) and every process gets the gathered
    result.

    Returns:
        tuple: (N, C) float32 features on the CPU, (N,) labels.
    """
    was_training = backbone.training
    backbone.eval()
    parts = []
    try:
        for data in dataloader:
            data = data_preprocessor(data, False)
            inputs = data['inputs']
            if isinstance(inputs, (list, tuple)):
                # pseudo_collate: a list of (C, H, W) images; default_collate
                # of one view: a list holding the (B, C, H, W) batch
                inputs = torch.stack(inputs) if inputs[0].dim() == 3 \
                    else inputs[0]
            feats = backbone(inputs)
            if isinstance(feats, (tuple, list)):
                feats = feats[-1]
            labels = [int(s.gt_label[0]) for s in data['data_samples']]
            parts.extend(zip(feats.float().cpu().unbind(0), labels))
    finally:
        backbone.train(was_training)
    size = len(dataloader.dataset)
    _, world_size = get_dist_info()
    if world_size > 1:
        parts = collect_results(parts, size, device='cpu')
        parts = _broadcast(parts)
    feats = torch.stack([p[0] for p in parts[:size]])
    labels = torch.tensor([p[1] for p in parts[:size]])
    return feats, labels


def _broadcast(obj):
    from mmengine.dist import broadcast_object_list
    holder = [obj]
    broadcast_object_list(holder, src=0)
    return holder[0]
