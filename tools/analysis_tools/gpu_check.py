"""Device check of xcit_mm on one GPU: numerics, training and speed.

    python tools/analysis_tools/gpu_check.py [--out gpu_check.json]
        [--skip parity,train,bench,misc] [--cpu]

Meant to be run as one prepared script on a GPU machine (about 5 minutes
on one H100-class GPU, well under 8), printing a table and writing JSON:

- **parity**: the fast XCA path vs the reference one (forward and
  backward), each measured against the reference computed in fp32, in
  fp32 / bf16 / fp16 autocast, at 196 tokens (224 px, patch 16) and at
  16384 tokens (1024 px, patch 8) with XCiT-S12 widths (C=384, 8 heads),
  with activations large enough that token-axis norms overflow fp16; and
  the whole XCiT-S12/16 backbone at 224 px. Pass: everything finite and
  the fast path's error at most twice the reference path's (plus a small
  floor per dtype);
- **train**: 20 AMP iterations (6 with ``--cpu``; bf16 where the GPU
  computes it natively, else fp16 with a GradScaler:
  ``xcit_mm.cli.amp.select_amp_dtype``) on
  synthetic data of the S12/16 classifier (224 px, batch 64) and of the
  S12/8 backbone + ``XCiTMultiScaleNeck`` at 800 x 1344 (batch 2, the Mask
  R-CNN regime), with and without ``with_cp``: loss, img/s (iterations
  6-20), peak memory. Pass: finite losses, and ``with_cp`` using less
  memory than without;
- **bench**: ``tools/analysis_tools/benchmark.py`` against timm, eager and
  ``torch.compile``-d, S12/16 bf16, batch 128 training / 256 inference at
  224 px, and batch 1 forward at 3584 x 3584 (``--mode scaling``);
- **misc**: ``compute_attention`` on maps that live on the GPU, and the
  ``--amp`` dtype chosen for this GPU vs its compute capability;
- **knn**: DINO's weighted k-NN vote (``xcit_mm.evaluation.weighted_knn``,
  k = 10, 20, 100, 200) of 10k queries against 100k synthetic 384-d
  training features of 1000 classes on the GPU: time and peak memory. Pass:
  the accuracies equal those of the CPU on the first 1000 queries (within
  0.2 points: rounding may break near-ties differently).

``--cpu`` runs every section at tiny sizes on the CPU (the test suite does,
``tests/test_tools/test_gpu_check.py``); its numbers say nothing about a
GPU. Exit status: 0 when every row passes, 1 otherwise.
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}
#: Error floor (relative, L2) of the fast path per autocast dtype.
FLOOR = {'fp32': 1e-5, 'bf16': 2e-2, 'fp16': 5e-3}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def finite(*ts) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in ts)


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def peak_reset(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device):
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None  # the CPU mode does not measure memory


# ------------------------------------------------------------------ parity
def _grads_of(m, x, dtype, device):
    x = x.clone().requires_grad_()
    with torch.autocast(device.type, dtype=dtype,
                        enabled=dtype != torch.float32):
        out = m(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
    out.float().square().mean().backward()
    grads = [x.grad] + [p.grad for p in m.parameters() if p.grad is not None]
    return out.float(), grads


def check_parity(device, cpu: bool) -> List[Dict]:
    from xcit_mm.models.backbones import XCiT
    from xcit_mm.models.layers.xcit_layers import XCA
    # fp32 means fp32 here: no TF32 in cuDNN convolutions or matmuls
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    C, h = (32, 2) if cpu else (384, 8)
    token_sizes = [196, 1024 if cpu else 16384]
    for n in token_sizes:
        torch.manual_seed(0)
        fast = XCA(C, h).to(device)
        with torch.no_grad():
            fast.temperature.uniform_(0.5, 3.)
        ref = copy.deepcopy(fast)
        ref.impl = 'reference'
        x = 4 * torch.randn(2, n, C, device=device)
        if n > 1000:  # token-axis norms above fp16's 65504
            x[..., :4] *= 300
        truth_out, truth_g = _grads_of(copy.deepcopy(ref), x, torch.float32,
                                       device)
        for name, dtype in DTYPES.items():
            res = {}
            for impl, m in (('fast', fast), ('reference', ref)):
                m.zero_grad(set_to_none=True)
                out, grads = _grads_of(m, x, dtype, device)
                res[impl] = dict(
                    finite=finite(out, *grads),
                    out=rel_err(out, truth_out),
                    grad=max(rel_err(g, t) for g, t in zip(grads, truth_g)))
            f, r = res['fast'], res['reference']
            ok = f['finite'] and all(
                f[k] <= max(2 * r[k], FLOOR[name]) for k in ('out', 'grad'))
            rows.append(dict(
                section='parity', name=f'XCA C={C} N={n} {name}', ok=ok,
                detail=(f"fast out {f['out']:.1e} grad {f['grad']:.1e} | "
                        f"ref out {r['out']:.1e} grad {r['grad']:.1e}"
                        f"{'' if r['finite'] else ' (ref not finite)'}"),
                fast=f, reference=r))
    # the whole backbone at 224 px (64 px in --cpu mode)
    arch = dict(embed_dims=32, depth=2, num_heads=2) if cpu else 'small-12'
    size = 64 if cpu else 224
    torch.manual_seed(0)
    fast = XCiT(arch=arch, patch_size=16).to(device).train()
    ref = copy.deepcopy(fast)
    for m in ref.modules():
        if hasattr(m, 'impl'):
            m.impl = 'reference'
    x = torch.randn(2 if cpu else 4, 3, size, size, device=device)
    truth_out, truth_g = _grads_of(copy.deepcopy(ref), x, torch.float32,
                                   device)
    for name, dtype in DTYPES.items():
        res = {}
        for impl, m in (('fast', fast), ('reference', ref)):
            m.zero_grad(set_to_none=True)
            out, grads = _grads_of(m, x, dtype, device)
            res[impl] = dict(
                finite=finite(out, *grads), out=rel_err(out, truth_out),
                grad=rel_err(torch.cat([g.flatten() for g in grads]),
                             torch.cat([g.flatten() for g in truth_g])))
        f, r = res['fast'], res['reference']
        ok = f['finite'] and all(
            f[k] <= max(2 * r[k], FLOOR[name]) for k in ('out', 'grad'))
        rows.append(dict(
            section='parity', ok=ok,
            name=f"XCiT-{'tiny' if cpu else 'S12'}/16 {size}px {name}",
            detail=(f"fast out {f['out']:.1e} grad {f['grad']:.1e} | "
                    f"ref out {r['out']:.1e} grad {r['grad']:.1e}"),
            fast=f, reference=r))
    return rows


# ------------------------------------------------------------------- train
def _classifier(cpu: bool, with_cp: bool):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models',
                                   'xcit-s12-p16.py')).model
    cfg.backbone.with_cp = with_cp
    cfg.pop('train_cfg', None)  # no mixup / cutmix: plain labels
    if cpu:
        cfg.backbone.arch = dict(embed_dims=32, depth=2, num_heads=2)
        cfg.head.in_channels = 32
    cfg.pop('data_preprocessor', None)
    return MODELS.build(cfg)


class _DenseModel(torch.nn.Module):
    """S12/8 backbone + XCiTMultiScaleNeck (the Mask R-CNN trunk)."""

    def __init__(self, cpu: bool, with_cp: bool):
        super().__init__()
        from xcit_mm.models.backbones import XCiT
        from xcit_mm.models.necks import XCiTMultiScaleNeck
        arch = dict(embed_dims=32, depth=4, num_heads=2) if cpu \
            else 'small-12'
        self.backbone = XCiT(arch=arch, patch_size=8, out_type='featmap',
                             out_indices=(0, 1, 2, 3) if cpu else None,
                             drop_path_rate=0.05, with_cp=with_cp)
        self.neck = XCiTMultiScaleNeck(self.backbone.embed_dims,
                                       patch_size=8)

    def forward(self, x):
        return self.neck(self.backbone(x))


def _train_run(name, build, make_batch, loss_fn, device, iters, batch):
    from xcit_mm.cli.amp import select_amp_dtype
    dtype_name = select_amp_dtype(device)
    dtype = DTYPES['bf16' if dtype_name == 'bfloat16' else 'fp16']
    torch.manual_seed(0)
    model = build().to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type,
                                  enabled=dtype == torch.float16)
    losses, times = [], []
    peak_reset(device)
    for _ in range(iters):
        inputs, target = make_batch()
        sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype):
            loss = loss_fn(model, inputs, target)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    steady = times[5:] if len(times) > 6 else times[1:]
    return dict(
        section='train', name=name, dtype=dtype_name,
        ok=all(map(lambda v: v == v and abs(v) != float('inf'), losses)),
        loss_first=losses[0], loss_last=losses[-1],
        img_per_s=batch / statistics.median(steady),
        peak_mib=peak_mib(device))


def check_train(device, cpu: bool) -> List[Dict]:
    import torch.nn.functional as F
    torch.backends.cudnn.allow_tf32 = True  # the training defaults
    iters = 6 if cpu else 20
    rows = []
    cls_batch, cls_size = (2, 32) if cpu else (64, 224)
    dense_batch, dense_hw = (1, (64, 96)) if cpu else (2, (800, 1344))
    for with_cp in (False, True):
        rows.append(_train_run(
            f'S12/16 classifier {cls_size}px b{cls_batch} with_cp={with_cp}',
            lambda: _classifier(cpu, with_cp),
            lambda: (torch.randn(cls_batch, 3, cls_size, cls_size,
                                 device=device),
                     torch.randint(0, 1000, (cls_batch, ), device=device)),
            lambda m, x, y: F.cross_entropy(
                m.head(m.neck(m.backbone(x)) if m.with_neck
                       else m.backbone(x)).float(), y),
            device, iters, cls_batch))
        rows.append(_train_run(
            f'S12/8 backbone+neck {dense_hw[0]}x{dense_hw[1]} b{dense_batch}'
            f' with_cp={with_cp}',
            lambda: _DenseModel(cpu, with_cp),
            lambda: (torch.randn(dense_batch, 3, *dense_hw, device=device),
                     None),
            lambda m, x, y: sum(o.float().square().mean() for o in m(x)),
            device, iters, dense_batch))
    if device.type == 'cuda':  # with_cp must save memory
        for i in range(2):
            plain, cp = rows[i], rows[i + 2]
            ok = cp['peak_mib'] < plain['peak_mib']
            plain['ok'] = plain['ok'] and ok
            cp['ok'] = cp['ok'] and ok
    for r in rows:
        mem = '-' if r['peak_mib'] is None else f"{r['peak_mib']:.0f} MiB"
        r['detail'] = (f"{r['dtype']} loss {r['loss_first']:.4f} -> "
                       f"{r['loss_last']:.4f}, {r['img_per_s']:.1f} img/s, "
                       f'peak {mem}')
    return rows


# ------------------------------------------------------------------- bench
def _benchmark(args: List[str], timeout: int) -> Dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = osp.join(tmp, 'bench.json')
        proc = subprocess.run(
            [sys.executable,
             osp.join(REPO, 'tools', 'analysis_tools', 'benchmark.py'),
             *args, '--json', out],
            cwd=REPO, capture_output=True, text=True, timeout=timeout,
            env=dict(os.environ, PYTHONPATH=REPO))
        result = dict(rc=proc.returncode, table=proc.stdout[-4000:],
                      stderr=proc.stderr[-2000:])
        if proc.returncode == 0 and osp.exists(out):
            with open(out) as f:
                result['json'] = json.load(f)
        return result


def check_bench(device, cpu: bool) -> List[Dict]:
    if cpu:
        common = ['--device', 'cpu', '--arch', '32,2,2', '--warmup', '1',
                  '--iters', '1', '--compile', 'off', '--no-memory']
        compare = common + ['--batch', '2', '--infer-batch', '2',
                            '--img-size', '32', '--num-classes', '10']
        scaling = common + ['--mode', 'scaling', '--sizes', '64',
                            '--scaling-models', 'xcit_mm,timm']
    else:
        common = ['--device', 'cuda', '--arch', 's12', '--patch', '16',
                  '--dtype', 'bf16', '--compile', 'both']
        compare = common + ['--batch', '128', '--infer-batch', '256',
                            '--img-size', '224']
        scaling = common + ['--mode', 'scaling', '--sizes', '3584',
                            '--scaling-models', 'xcit_mm,timm']
    rows = []
    for name, args, timeout in (
            ('compare S12/16 bf16 b128 train / b256 infer 224px', compare,
             270),
            ('scaling S12/16 bf16 b1 3584px', scaling, 120)):
        if cpu:
            name = f'{name} (tiny CPU stand-in)'
        res = _benchmark(args, timeout)
        lines = [ln for ln in res['table'].splitlines()
                 if ln.strip() and not ln.startswith('wrote')]
        rows.append(dict(section='bench', name=name, ok=res['rc'] == 0,
                         detail=(lines[-1] if lines else res['stderr'][-200:]
                                 ).strip()[:150],
                         **res))
    return rows


# -------------------------------------------------------------------- misc
def check_misc(device, cpu: bool) -> List[Dict]:
    from xcit_mm.cli.amp import select_amp_dtype
    from xcit_mm.models.backbones import XCiT
    from xcit_mm.visualization.attention import compute_attention
    rows = []
    model = XCiT(arch=dict(embed_dims=32, depth=2, num_heads=2),
                 patch_size=16).to(device).eval()
    try:
        res = compute_attention(model, torch.rand(1, 3, 32, 48,
                                                  device=device))
        ok = res['cls_attn'].shape == (2, 2, 3)
        detail = f"cls_attn {res['cls_attn'].shape} on the host"
    except Exception as e:  # noqa: B902
        ok, detail = False, f'{type(e).__name__}: {e}'
    rows.append(dict(section='misc', name=f'compute_attention on {device}',
                     ok=ok, detail=detail))
    dtype = select_amp_dtype(device)
    if device.type == 'cuda':
        major, minor = torch.cuda.get_device_capability(device)
        want = 'bfloat16' if major >= 8 else 'float16'
        detail = f'sm_{major}{minor}: {dtype}'
    else:
        want, detail = 'float16', f'cpu: {dtype}'
    rows.append(dict(section='misc', name='--amp dtype', ok=dtype == want,
                     detail=detail))
    return rows


def check_knn(device, cpu: bool) -> List[Dict]:
    from xcit_mm.evaluation import weighted_knn
    n_train, n_test, dim, classes = ((2000, 200, 32, 10) if cpu else
                                     (100_000, 10_000, 384, 1000))
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(classes, dim, generator=g)
    train_labels = torch.randint(0, classes, (n_train, ), generator=g)
    test_labels = torch.randint(0, classes, (n_test, ), generator=g)
    train = centres[train_labels] + 2 * torch.randn(n_train, dim, generator=g)
    test = centres[test_labels] + 2 * torch.randn(n_test, dim, generator=g)
    args = [train.to(device), train_labels.to(device), test.to(device),
            test_labels.to(device)]
    peak_reset(device)
    sync(device)
    start = time.perf_counter()
    got = weighted_knn(*args)
    sync(device)
    seconds = time.perf_counter() - start
    peak = peak_mib(device)
    head = min(1000, n_test)
    on_device = weighted_knn(args[0], args[1], args[2][:head],
                             args[3][:head], num_classes=classes)
    on_cpu = weighted_knn(train, train_labels, test[:head],
                          test_labels[:head], num_classes=classes,
                          chunk_size=7)  # other block shapes too
    diff = max(abs(a - b) for k in on_cpu
               for a, b in zip(on_device[k], on_cpu[k]))
    detail = (f'{n_train} x {n_test} x {dim}-d on {device.type}: '
              f'{seconds:.2f} s' + (f', peak {peak:.0f} MiB' if peak else '')
              + f', top-1 k=20 {got[20][0]:.2f}; vs CPU max diff '
              f'{diff:.2f} points')
    return [dict(section='knn', name='weighted k-NN vote', ok=diff <= 0.2,
                 seconds=seconds, peak_mib=peak, detail=detail)]


SECTIONS = dict(parity=check_parity, train=check_train, bench=check_bench,
                misc=check_misc, knn=check_knn)


def print_table(rows: List[Dict]) -> None:
    w = max(len(r['name']) for r in rows)
    print(f"{'section':7}  {'check':{w}}  ok    detail")
    for r in rows:
        print(f"{r['section']:7}  {r['name']:{w}}  "
              f"{'PASS' if r['ok'] else 'FAIL'}  {r.get('detail', '')}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='gpu_check.json')
    parser.add_argument('--skip', default='',
                        help=f'comma-separated sections of {list(SECTIONS)}')
    parser.add_argument('--cpu', action='store_true',
                        help='tiny sizes on the CPU (a test of the script)')
    args = parser.parse_args(argv)
    if args.cpu:
        device = torch.device('cpu')
    elif not torch.cuda.is_available():
        print('gpu_check: no GPU is visible; use --cpu to run the tiny CPU '
              'version.', file=sys.stderr)
        return 2
    else:
        device = torch.device('cuda', torch.cuda.current_device())
    skip = {s.strip() for s in args.skip.split(',') if s.strip()}
    env = dict(torch=torch.__version__, cuda=torch.version.cuda,
               device=(torch.cuda.get_device_name(device)
                       if device.type == 'cuda' else 'cpu'), cpu_mode=args.cpu)
    rows, seconds = [], {}
    for name, fn in SECTIONS.items():
        if name in skip:
            continue
        start = time.perf_counter()
        try:
            rows += fn(device, args.cpu)
        except Exception as e:  # noqa: B902  (report, go on)
            rows.append(dict(section=name, name='(section failed)', ok=False,
                             detail=f'{type(e).__name__}: {e}'))
        seconds[name] = time.perf_counter() - start
    print_table(rows)
    print('seconds per section: ' + ', '.join(
        f'{k} {v:.0f}' for k, v in seconds.items()))
    with open(args.out, 'w') as f:
        json.dump(dict(env=env, seconds=seconds, rows=rows), f, indent=1,
                  default=str)
    print(f'wrote {args.out}')
    return 0 if all(r['ok'] for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
