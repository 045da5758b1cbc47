"""DINOHead and DINOLoss against direct computations of their formulas."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xcit_mm.models.heads import DINOHead, WeightNormLinear
from xcit_mm.models.losses import DINOLoss
from xcit_mm.utils.errors import ConfigError


def test_weight_norm_linear_matches_torch_weight_norm():
    torch.manual_seed(0)
    layer = WeightNormLinear(8, 5)
    with torch.no_grad():
        layer.weight_g.uniform_(0.5, 2.0)
    ref = torch.nn.Linear(8, 5, bias=False)
    ref = torch.nn.utils.parametrizations.weight_norm(ref, dim=0)
    with torch.no_grad():
        ref.parametrizations.weight.original0.copy_(layer.weight_g)
        ref.parametrizations.weight.original1.copy_(layer.weight_v)
    x = torch.randn(3, 8)
    torch.testing.assert_close(layer(x), ref(x))
    # every row of the weight has norm g
    torch.testing.assert_close(layer.weight.norm(dim=1),
                               layer.weight_g.squeeze(1))


@pytest.mark.parametrize('norm_last_layer', [True, False])
def test_dino_head(norm_last_layer):
    torch.manual_seed(0)
    head = DINOHead(16, out_channels=32, hidden_channels=24,
                    bottleneck_channels=8, norm_last_layer=norm_last_layer)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == \
        [(16, 24), (24, 24), (24, 8)]
    assert all(not m.bias.detach().any() for m in linears)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in head.mlp)
    assert head.last_layer.weight_g.requires_grad is (not norm_last_layer)
    assert torch.all(head.last_layer.weight_g == 1)
    x = torch.randn(4, 16)
    # direct: MLP, L2 norm, unit-norm rows
    z = F.normalize(head.mlp(x), dim=-1)
    w = head.last_layer.weight_v / head.last_layer.weight_v.norm(
        dim=1, keepdim=True)
    torch.testing.assert_close(head(x), z @ w.T)
    assert set(k for k, _ in head.named_parameters()) >= {
        'last_layer.weight_g', 'last_layer.weight_v'}
    with pytest.raises(ConfigError):
        DINOHead(16, num_layers=0)


def _reference_loss(student, teacher, center, t_temp, s_temp=0.1):
    """The loss written out pair by pair, float64."""
    n_global = len(teacher)
    terms = []
    for i in range(n_global):
        q = torch.softmax((teacher[i].double() - center.double()) / t_temp,
                          -1)
        for v in range(len(student)):
            if v == i:
                continue
            log_p = torch.log_softmax(student[v].double() / s_temp, -1)
            terms.append((-(q * log_p).sum(-1)).mean())
    return torch.stack(terms).mean(), len(terms)


def test_dino_loss_matches_formula_and_updates_center():
    torch.manual_seed(0)
    K, B = 12, 5
    loss_fn = DINOLoss(out_channels=K, warmup_teacher_temp=0.04,
                       teacher_temp=0.07, warmup_teacher_temp_epochs=4,
                       center_momentum=0.9)
    loss_fn.center.normal_()
    center0 = loss_fn.center.clone()
    student = [torch.randn(B, K) for _ in range(6)]  # 2 global + 4 local
    teacher = [torch.randn(B, K) for _ in range(2)]
    loss, stats = loss_fn(student, teacher, epoch=2)
    t_temp = 0.04 + (0.07 - 0.04) * 2 / 3
    ref, n_terms = _reference_loss(student, teacher, center0, t_temp)
    assert n_terms == 2 * 6 - 2  # same-view pairs skipped
    torch.testing.assert_close(loss.double(), ref)
    assert float(stats['teacher_temp']) == pytest.approx(t_temp)
    # centre: EMA of the teacher batch mean, after the loss used the old one
    expected = 0.9 * center0 + 0.1 * torch.cat(teacher).mean(0,
                                                             keepdim=True)
    torch.testing.assert_close(loss_fn.center, expected)
    # monitors: mean entropy of the teacher, KL = CE - H
    q = torch.softmax((torch.cat(teacher) - center0) / t_temp, -1)
    entropy = -(q * q.log()).sum(-1).mean()
    torch.testing.assert_close(stats['teacher_entropy'], entropy)
    torch.testing.assert_close(stats['kl_div'], loss.detach() - entropy)
    torch.testing.assert_close(stats['center_norm'], center0.norm())
    kl = [F.kl_div(torch.log_softmax(student[v] / 0.1, -1),
                   torch.softmax((teacher[i] - center0) / t_temp, -1),
                   reduction='batchmean')
          for i in range(2) for v in range(6) if v != i]
    torch.testing.assert_close(stats['kl_div'], torch.stack(kl).mean())


def test_teacher_temperature_schedule_is_dinos():
    loss_fn = DINOLoss(out_channels=4, warmup_teacher_temp=0.04,
                       teacher_temp=0.07, warmup_teacher_temp_epochs=30)
    reference = np.concatenate(
        (np.linspace(0.04, 0.07, 30), np.ones(270) * 0.07))
    got = [loss_fn.teacher_temp_at(e) for e in range(300)]
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-12)


def test_dino_loss_rejects_too_few_views():
    loss_fn = DINOLoss(out_channels=4)
    with pytest.raises(ConfigError, match='at least 2 student views'):
        loss_fn([torch.randn(2, 4)], [torch.randn(2, 4)])
    with pytest.raises(ConfigError, match='temperatures must be positive'):
        DINOLoss(out_channels=4, teacher_temp=0)


def test_dino_loss_bf16_autocast_is_finite_and_fp32():
    """Under autocast the softmaxes run in float32: large logits (the
    65536-prototype head at a 0.04 temperature gives logits of +-25) stay
    finite, and the result equals the float32 computation."""
    torch.manual_seed(0)
    K, B = 4096, 4
    student = [torch.randn(B, K) * 30 for _ in range(4)]
    teacher = [torch.randn(B, K) * 30 for _ in range(2)]
    ref_fn, amp_fn = DINOLoss(out_channels=K), DINOLoss(out_channels=K)
    ref, _ = ref_fn(student, teacher)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss, stats = amp_fn([s.bfloat16() for s in student],
                             [t.bfloat16() for t in teacher])
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss) and all(
        torch.isfinite(v) for v in stats.values())
    # only the bf16 rounding of the inputs differs
    assert abs(float(loss) - float(ref)) / float(ref) < 2e-2
    assert amp_fn.center.dtype == torch.float32
    assert math.isfinite(float(amp_fn.center.norm()))
