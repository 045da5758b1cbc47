"""``with_cp=True`` recomputes the XCA blocks in the backward pass but not
their BN: running statistics move once per step, exactly as without
checkpointing, and no BN (SyncBN: no collective) runs inside backward."""
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from tests.utils import TINY_ARCH
from xcit_mm.models.backbones import XCiT


def _step(with_cp: bool):
    torch.manual_seed(0)
    model = XCiT(arch=TINY_ARCH, patch_size=16, drop_path_rate=0.3,
                 out_type='featmap', out_indices=(0, 1), with_cp=with_cp)
    model.init_weights()
    model.train()
    calls = []
    for name, m in model.named_modules():
        if isinstance(m, _BatchNorm):
            m.register_forward_hook(
                lambda mod, i, o, name=name: calls.append(
                    (name, torch.is_grad_enabled())))
    torch.manual_seed(1)
    x = torch.randn(2, 3, 48, 64)
    outs = model(x)
    forward_calls = list(calls)
    sum(o.square().mean() for o in outs).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return model.state_dict(), grads, forward_calls, calls


def test_checkpointing_keeps_bn_statistics_exact():
    ref_sd, ref_grads, ref_fwd, _ = _step(with_cp=False)
    sd, grads, fwd, calls = _step(with_cp=True)
    bn_buffers = [k for k in sd if 'running_' in k or 'num_batches' in k]
    assert any(k.startswith('blocks.') for k in bn_buffers)
    for k in bn_buffers:
        assert torch.equal(sd[k], ref_sd[k]), k
        if k.endswith('num_batches_tracked'):
            assert sd[k].item() == 1, k
    # each BN ran once, in the forward pass; none during backward
    assert calls == fwd == ref_fwd
    assert len({name for name, _ in calls}) == len(calls)
    # the recomputed parts give the gradients of the plain step
    for k, g in ref_grads.items():
        torch.testing.assert_close(grads[k], g, rtol=1e-5, atol=1e-6,
                                   msg=k)


def test_checkpointing_is_used():
    """The attention and MLP parts are recomputed: their forward runs again
    during backward (so with_cp still saves memory)."""
    torch.manual_seed(0)
    model = XCiT(arch=TINY_ARCH, patch_size=16, out_type='featmap',
                 out_indices=(1, ), with_cp=True).train()
    runs = []
    model.blocks[0].mlp.register_forward_hook(lambda *a: runs.append(1))
    model.blocks[0].attn.register_forward_hook(lambda *a: runs.append(0))
    model(torch.randn(1, 3, 32, 32))[0].sum().backward()
    assert sorted(runs) == [0, 0, 1, 1]
