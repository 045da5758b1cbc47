"""DeiT's hard and soft distillation terms against hand computation."""
import math

import pytest
import torch

from xcit_mm.models import DistillationLoss


def _logits(seed=0, b=4, k=5):
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(b, k, generator=g), 3 * torch.randn(b, k,
                                                               generator=g)


def test_hard_is_ce_against_teacher_argmax():
    s, t = _logits()
    got = DistillationLoss('hard')(s, t)
    # by hand: -log softmax(s)[teacher's class], averaged over the batch
    terms = []
    for sb, tb in zip(s.tolist(), t.tolist()):
        c = max(range(len(tb)), key=tb.__getitem__)
        log_z = math.log(sum(math.exp(v) for v in sb))
        terms.append(log_z - sb[c])
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


@pytest.mark.parametrize('tau', [1.0, 2.0, 0.5])
def test_soft_is_deit_kl_times_tau2_over_numel(tau):
    s, t = _logits(seed=1)
    got = DistillationLoss('soft', tau=tau)(s, t)
    # by hand: sum_{b,k} p_t (log p_t - log p_s) * tau^2 / (B * K)
    total = 0.
    for sb, tb in zip(s.tolist(), t.tolist()):
        zs = sum(math.exp(v / tau) for v in sb)
        zt = sum(math.exp(v / tau) for v in tb)
        for vs, vt in zip(sb, tb):
            pt = math.exp(vt / tau) / zt
            total += pt * (math.log(pt) - math.log(math.exp(vs / tau) / zs))
    expected = total * tau * tau / s.numel()
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_soft_is_zero_when_student_matches_teacher():
    s, _ = _logits()
    assert DistillationLoss('soft', tau=3.)(s, s.clone()).abs() < 1e-7


def test_gradients_reach_the_student_only():
    s, t = _logits()
    s.requires_grad_(True)
    t.requires_grad_(True)
    DistillationLoss('soft')(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_mixed_precision_inputs_are_computed_in_float32():
    s, t = _logits()
    got = DistillationLoss('soft', tau=2.)(s.half(), t.half())
    assert got.dtype == torch.float32
    ref = DistillationLoss('soft', tau=2.)(s.half().float(), t.half().float())
    assert torch.equal(got, ref)


def test_errors():
    with pytest.raises(ValueError, match="kd_type must be one of"):
        DistillationLoss('medium')
    with pytest.raises(ValueError, match='tau must be > 0'):
        DistillationLoss('soft', tau=0.)
    with pytest.raises(ValueError, match='same classes'):
        DistillationLoss()(torch.randn(2, 5), torch.randn(2, 6))
