"""Benchmark xcit_mm's XCiT side by side with timm's (and CrossFormer).

    python tools/analysis_tools/benchmark.py
        [--mode compare|scaling|all|deploy]
        [--arch s12] [--patch 16] [--batch 8] [--infer-batch N]
        [--img-size 224 [384 ...]] [--dtype fp32|bf16|fp16]
        [--compile off|on|both] [--device auto|cpu|cuda] [--channels-last]
        [--models timm,xcit_mm[,crossformer]] [--crossformer-arch small]
        [--warmup 3] [--iters 10] [--threads N]
        [--sizes 224 448 896] [--scaling-models xcit_mm,crossformer,vit]
        [--json OUT]

``compare`` (default): timm's ``xcit_*`` classifier and xcit_mm's
(mmpretrain ``ImageClassifier`` with the ``xcit_mm.XCiT`` backbone, built
from ``configs/_base_/models/xcit-s12-p16.py``) with the **same weights**
(timm's converted by ``xcit_mm.models.backbones.xcit_convert.to_xcit_mm``;
their logits are compared before timing). Each measures

- a training step: forward, cross-entropy, backward, AdamW step (the same
  optimizer for every model: fused where the device supports it);
- inference: forward in eval mode without gradients;
- peak memory of one training step and one inference call.

The models run **interleaved** (iteration i of every model before
iteration i + 1 of any), after warm-up (which includes compilation), with a
device synchronisation around each timed call; the table gives medians.
On the CPU the script also reports CPU-time throughput (``time.
process_time``), which a machine shared with other jobs disturbs far less
than wall-clock time.

``crossformer`` (in ``--models`` or ``--scaling-models``) adds xcit_mm's
CrossFormer classifier of ``--crossformer-arch`` (built from
``configs/_base_/models/crossformer-s.py``; its own weights, so it is left
out of the logits check) to the same interleaved timing, for a side-by-side
of the two backbone families.

``scaling``: batch 1, forward only (``forward_features``: class attention
and final norm included), over ``--sizes``, for xcit_mm's and timm's XCiT
and a ViT (``--vit``, timm ``deit_small_patch16_224`` with
``dynamic_img_size=True``). It prints time and peak memory per size and the
growth exponent b of ``time ~ tokens^b`` over the largest sizes: about 1 for
XCiT (attention linear in the tokens) and towards 2 for the ViT. Memory is
reported as the peak and, in parentheses, the activations alone (peak minus
weights and input); a ViT's memory grows quadratically only with
``--vit-attn math``, since fused attention never stores the N x N matrix.

``deploy``: inference on the CPU through each of ``--backends`` (torch
eager, ``torch.compile``, onnxruntime on a file exported by torch's dynamo
exporter) for xcit_mm's XCiT, xcit_mm's CrossFormer and timm's XCiT
(``--deploy-models``): latency at batch 1 and throughput at
``--throughput-batch`` (16), the achieved GFLOP/s (FLOPs counted by
:func:`xcit_mm.utils.flops.get_model_complexity`, 2 per multiply-add)
against this CPU's fp32 peak (estimated from its vector units and clock,
and measured with a large matmul), and each backend's largest relative
output difference from eager::

    python tools/analysis_tools/benchmark.py --mode deploy --device cpu

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated``; on the CPU, the
peak resident set size (``VmHWM`` in ``/proc/self/status``, reset through
``/proc/self/clear_refs``) with glibc told to return every block of 64 KiB
or more to the system on free, so RSS follows the live tensors. Both are
reported as what the model would use alone: the increase during the call
plus the model's own parameters and optimizer state (several models share
the process).
"""
import argparse
import ctypes
import datetime
import json
import math
import os
import os.path as osp
import platform
import re
import statistics
import sys
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE_MODEL_CFG = osp.join(REPO, 'configs/_base_/models/xcit-s12-p16.py')
CROSSFORMER_CFG = osp.join(REPO, 'configs/_base_/models/crossformer-s.py')
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}
MODEL_CHOICES = ('timm', 'xcit_mm', 'xcit_mm_ref', 'crossformer')
MIB = 2**20


# --------------------------------------------------------------- arguments
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='xcit_mm vs timm XCiT speed and memory, side by side.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--mode', default='compare',
                        choices=['compare', 'scaling', 'deploy', 'all'])
    parser.add_argument(
        '--backends', default='eager,compile,onnxruntime',
        help='deploy mode: inference backends, from eager, compile '
        '(torch.compile), onnxruntime (CPU execution provider)')
    parser.add_argument(
        '--deploy-models', default='xcit_mm,crossformer,timm',
        help='deploy mode: models, from xcit_mm, crossformer, timm')
    parser.add_argument('--throughput-batch', type=int, default=16,
                        help='deploy mode: the throughput batch (latency '
                        'is batch 1)')
    parser.add_argument(
        '--arch', default='s12',
        help='XCiT arch: a name or alias (n12 t12 t24 s12 s24 m24 l24) or '
        'a custom "EMBED_DIMS,DEPTH,HEADS" such as 32,2,2')
    parser.add_argument('--patch', type=int, default=16, choices=[8, 16])
    parser.add_argument('--crossformer-arch', default='small',
                        help='CrossFormer arch of the crossformer model')
    parser.add_argument('--batch', type=int, default=None,
                        help='training batch (default 8 on CPU, 128 on '
                        'CUDA)')
    parser.add_argument('--infer-batch', type=int, default=None,
                        help='inference batch (default: --batch on CPU, 256 '
                        'on CUDA)')
    parser.add_argument('--img-size', type=int, nargs='+', default=[224],
                        help='square input sizes for compare mode (one '
                        'table row each)')
    parser.add_argument('--dtype', default='fp32', choices=list(DTYPES),
                        help='autocast dtype (fp32: no autocast)')
    parser.add_argument('--compile', default='off',
                        choices=['off', 'on', 'both'],
                        help='torch.compile the models (both: eager and '
                        'compiled variants side by side)')
    parser.add_argument('--compile-mode', default=None,
                        help='torch.compile mode, e.g. max-autotune-no-'
                        'cudagraphs (default: torch default)')
    parser.add_argument('--device', default='auto',
                        choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--channels-last', action='store_true',
                        help='models and inputs in channels-last format')
    parser.add_argument('--tf32', action='store_true',
                        help='CUDA: allow TF32 matmuls/convs in fp32 runs')
    parser.add_argument(
        '--models', default='timm,xcit_mm',
        help=f'comma-separated, from {MODEL_CHOICES} (xcit_mm_ref: xcit_mm '
        'with impl="reference"); the first is the ratio baseline')
    parser.add_argument('--optim-impl', default='auto',
                        choices=['auto', 'fused', 'foreach', 'loop'],
                        help='AdamW implementation, the same for all models '
                        '(auto: fused where supported)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed iterations per model (compilation '
                        'happens here)')
    parser.add_argument('--iters', type=int, default=10,
                        help='timed iterations per model (median taken)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--no-train', action='store_true',
                        help='compare mode: skip the training step')
    parser.add_argument('--no-infer', action='store_true',
                        help='compare mode: skip inference')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurement')
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument(
        '--sizes', type=int, nargs='+', default=None,
        help='scaling mode resolutions (default 224 448 896 on CPU, '
        '224 448 896 1792 3584 on CUDA)')
    parser.add_argument('--scaling-models', default='xcit_mm,timm,vit',
                        help='scaling mode models, from xcit_mm, '
                        'xcit_mm_ref, timm, vit, crossformer')
    parser.add_argument('--vit', default='deit_small_patch16_224',
                        help='timm ViT baseline of the scaling mode (built '
                        'with dynamic_img_size=True)')
    parser.add_argument('--vit-attn', default='fused',
                        choices=['fused', 'math'],
                        help='ViT attention: fused (scaled_dot_product_'
                        'attention, never stores the N x N matrix) or math '
                        '(softmax(q k^T) v, stores it)')
    parser.add_argument('--scaling-iters', type=int, default=None,
                        help='timed iterations per size (default: '
                        'min(--iters, 5))')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', default=None, help='write results here')
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(',') if m.strip()]
    for m in args.models:
        if m not in MODEL_CHOICES:
            parser.error(f'--models: unknown model {m!r}; choose from '
                         f'{MODEL_CHOICES}')
    args.scaling_models = [
        m.strip() for m in args.scaling_models.split(',') if m.strip()
    ]
    for m in args.scaling_models:
        if m not in ('xcit_mm', 'xcit_mm_ref', 'timm', 'vit', 'crossformer'):
            parser.error(f'--scaling-models: unknown model {m!r}')
    if args.warmup < 1 or args.iters < 1:
        parser.error('--warmup and --iters must be at least 1')
    return args


def resolve_device(name: str) -> torch.device:
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('benchmark: --device cuda, but torch.cuda is not '
                         'available; use --device cpu.')
    return torch.device(name)


def parse_arch(arch: str) -> Tuple[dict, Optional[str]]:
    """-> (xcit_mm arch dict, timm name stem or None for a custom arch)."""
    from xcit_mm.models.backbones import resolve_arch
    from xcit_mm.models.backbones.xcit import ARCH_ALIASES
    if re.fullmatch(r'\d+,\d+,\d+', arch):
        C, depth, heads = map(int, arch.split(','))
        return resolve_arch(dict(embed_dims=C, depth=depth,
                                 num_heads=heads)), None
    name = ARCH_ALIASES.get(arch.lower(), arch.lower())
    return resolve_arch(name), name.replace('-', '_')


# ----------------------------------------------------------------- memory
class CpuMemory:
    """Peak RSS of this process between :meth:`reset` and :meth:`peak`.

    :meth:`reset` returns the free heap pages to the system
    (``malloc_trim``), so that memory the measured call reuses counts again
    when it is touched, and during the measurement glibc serves (and returns
    on free) every block of 64 KiB or more with mmap, so that RSS follows the
    live tensors. :meth:`peak` restores a 32 MiB threshold (glibc's own upper
    bound) so that timed runs allocate as usual.
    """
    M_MMAP_THRESHOLD = -3

    def __init__(self):
        self.ok = osp.exists('/proc/self/clear_refs')
        self.libc = None
        if platform.system() == 'Linux':
            try:
                self.libc = ctypes.CDLL('libc.so.6')
            except OSError:
                self.libc = None

    def _mmap_threshold(self, nbytes: int) -> None:
        if self.libc is not None:
            self.libc.mallopt(self.M_MMAP_THRESHOLD, nbytes)

    @staticmethod
    def _status(field: str) -> int:
        with open('/proc/self/status') as f:
            m = re.search(rf'^{field}:\s+(\d+) kB', f.read(), re.M)
        return int(m.group(1)) * 1024

    def reset(self) -> int:
        """Reset the peak to the current RSS; return the current RSS."""
        if self.libc is not None:
            self.libc.malloc_trim(0)
        self._mmap_threshold(64 * 1024)
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
        except OSError:
            self.ok = False
        return self._status('VmRSS') if self.ok else 0

    def peak(self) -> int:
        self._mmap_threshold(32 * MIB)
        return self._status('VmHWM') if self.ok else 0


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors
               if isinstance(t, torch.Tensor))


def optimizer_state_bytes(opt: Optional[torch.optim.Optimizer]) -> int:
    if opt is None:
        return 0
    return sum(
        tensor_bytes(v for v in s.values()) for s in opt.state.values())


# ---------------------------------------------------------------- models
def build_timm_xcit(arch: dict, stem: Optional[str], patch: int,
                    num_classes: int) -> nn.Module:
    import timm
    if stem is not None:
        return timm.create_model(f'xcit_{stem}_p{patch}_224',
                                 pretrained=False, num_classes=num_classes)
    from timm.models.xcit import Xcit
    return Xcit(patch_size=patch, num_classes=num_classes,
                embed_dim=arch['embed_dims'], depth=arch['depth'],
                num_heads=arch['num_heads'], eta=arch['eta'],
                tokens_norm=arch['tokens_norm'])


def build_xcit_mm_classifier(arch: dict, patch: int, num_classes: int,
                             impl: str = 'fast') -> nn.Module:
    """The classifier exactly as the base config builds it."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(BASE_MODEL_CFG).model
    cfg.backbone.update(arch=dict(arch), patch_size=patch,
                        drop_path_rate=0., impl=impl)
    cfg.head.update(in_channels=arch['embed_dims'], num_classes=num_classes)
    return MODELS.build(cfg)


def build_crossformer_classifier(arch: str, num_classes: int) -> nn.Module:
    """xcit_mm's CrossFormer classifier as its base config builds it."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    from xcit_mm.models.backbones.crossformer import resolve_arch
    cfg = Config.fromfile(CROSSFORMER_CFG).model
    cfg.backbone.update(arch=arch, drop_path_rate=0.)
    cfg.head.update(in_channels=8 * resolve_arch(arch)['embed_dims'],
                    num_classes=num_classes)
    return MODELS.build(dict(cfg, _scope_='mmpretrain'))


class Logits(nn.Module):
    """``model(x) -> logits`` for an mmpretrain classifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, mode='tensor')


class Features(nn.Module):
    """``forward_features`` of a timm model, or an xcit_mm backbone."""

    def __init__(self, model: nn.Module, timm_model: bool):
        super().__init__()
        self.model = model
        self.timm_model = timm_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.timm_model:
            return self.model.forward_features(x)
        return self.model(x)[0]


def same_weight_models(args, arch: dict, stem: Optional[str],
                       names: List[str]) -> Dict[str, nn.Module]:
    """timm and xcit_mm classifiers with the same (timm-initialised)
    weights, as ``x -> logits`` modules on the CPU in fp32."""
    from xcit_mm.models.backbones.xcit_convert import to_xcit_mm
    torch.manual_seed(args.seed)
    ref = build_timm_xcit(arch, stem, args.patch, args.num_classes)
    backbone, head, _ = to_xcit_mm(ref.state_dict())
    models = {}
    for name in names:
        if name == 'timm':
            models[name] = ref
            continue
        impl = 'reference' if name == 'xcit_mm_ref' else 'fast'
        clf = build_xcit_mm_classifier(arch, args.patch, args.num_classes,
                                       impl)
        clf.backbone.load_state_dict(backbone, strict=True)
        clf.head.load_state_dict(head, strict=True)
        models[name] = Logits(clf)
    return models


def logits_parity(models: Dict[str, nn.Module], img_size: int,
                  device: torch.device) -> Dict[str, float]:
    """Relative error of each model's fp32 eval logits against timm's."""
    if 'timm' not in models:
        return {}
    x = torch.randn(2, 3, img_size, img_size,
                    generator=torch.Generator().manual_seed(1)).to(device)
    out = {}
    with torch.no_grad():
        for m in models.values():
            m.eval()
        ref = models['timm'](x).float()
        for name, m in models.items():
            if name != 'timm':
                got = m(x).float()
                out[name] = ((got - ref).norm() / ref.norm()).item()
    return out


def make_optimizer(params, impl: str,
                   device: torch.device) -> Tuple[torch.optim.Optimizer, str]:
    """AdamW with the requested (or best supported) implementation."""
    kw = dict(lr=1e-4, weight_decay=0.05)
    order = {'auto': ['fused', 'foreach', 'loop'], 'fused': ['fused'],
             'foreach': ['foreach'], 'loop': ['loop']}[impl]
    params = list(params)
    for choice in order:
        try:
            extra = {'fused': dict(fused=True), 'foreach': dict(foreach=True),
                     'loop': dict(foreach=False)}[choice]
            # the constructor checks that the device supports ``fused``
            return torch.optim.AdamW(params, **kw, **extra), choice
        except (RuntimeError, TypeError, ValueError):
            if impl != 'auto':
                raise
    raise RuntimeError('no AdamW implementation works here')  # unreachable


# ------------------------------------------------------------------ timing
class Runner:
    """One model variant: its callables for a train step and inference."""

    def __init__(self, name: str, module: nn.Module, args, device,
                 compiled: bool):
        self.name = name
        self.device = device
        self.module = module
        self.fn = module
        self.compiled = compiled
        if compiled:
            self.fn = torch.compile(module, mode=args.compile_mode)
        self.amp = DTYPES[args.dtype]
        self.opt = None
        self.optim_impl = None
        self.scaler = None
        self.first_call_s = {}

    def autocast(self):
        if self.amp == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    def setup_train(self, optim_impl: str):
        self.opt, self.optim_impl = make_optimizer(self.module.parameters(),
                                                   optim_impl, self.device)
        if self.amp == torch.float16 and self.device.type == 'cuda':
            self.scaler = torch.amp.GradScaler('cuda')

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.module.train()
        self.opt.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.fn(x)
        loss = F.cross_entropy(logits.float(), y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()

    def infer(self, x: torch.Tensor) -> None:
        self.module.eval()
        with torch.no_grad(), self.autocast():
            self.fn(x)


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable, device: torch.device) -> Tuple[float, float]:
    """(wall seconds, process CPU seconds) of one synchronised call."""
    sync(device)
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - w0, time.process_time() - c0


def measure_interleaved(calls: Dict[str, Callable], device, warmup: int,
                        iters: int) -> Dict[str, dict]:
    """Warm up each call, then time them round-robin ``iters`` times."""
    res = {k: dict(wall=[], cpu=[], warmup_s=[]) for k in calls}
    for name, fn in calls.items():
        for _ in range(warmup):
            res[name]['warmup_s'].append(timed(fn, device)[0])
    for _ in range(iters):
        for name, fn in calls.items():
            wall, cpu = timed(fn, device)
            res[name]['wall'].append(wall)
            res[name]['cpu'].append(cpu)
    for r in res.values():
        r['wall_median_s'] = statistics.median(r['wall'])
        r['cpu_median_s'] = statistics.median(r['cpu'])
    return res


def measure_peak(fn: Callable, device: torch.device, static_bytes: int,
                 cpu_mem: CpuMemory) -> Optional[float]:
    """Peak memory (MiB) of one call, as if the model ran alone."""
    import gc
    gc.collect()
    sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        if not cpu_mem.ok:
            return None
        base = cpu_mem.reset()
        try:
            fn()
        finally:
            peak = cpu_mem.peak()
    return (max(peak - base, 0) + static_bytes) / MIB


# ------------------------------------------------------------ compare mode
def run_compare(args, device, cpu_mem) -> dict:
    arch, stem = parse_arch(args.arch)
    base_models = same_weight_models(
        args, arch, stem, [m for m in args.models if m != 'crossformer'])
    parity_models = dict(base_models)
    if 'crossformer' in args.models:
        torch.manual_seed(args.seed)
        base_models['crossformer'] = Logits(build_crossformer_classifier(
            args.crossformer_arch, args.num_classes))
        base_models = {k: base_models[k] for k in args.models}
    for m in base_models.values():
        m.to(device)
        if args.channels_last:
            m.to(memory_format=torch.channels_last)
    compiled = {'off': [False], 'on': [True], 'both': [False, True]}[
        args.compile]
    runners = {}
    for c in compiled:
        for name, m in base_models.items():
            key = name + ('+compile' if c else '')
            runners[key] = Runner(key, m, args, device, c)
    if not args.no_train:
        for r in runners.values():
            r.setup_train(args.optim_impl)
    batch = args.batch or (128 if device.type == 'cuda' else 8)
    infer_batch = args.infer_batch or (256 if device.type == 'cuda' else
                                       batch)
    fmt = torch.channels_last if args.channels_last else \
        torch.contiguous_format
    result = dict(batch=batch, infer_batch=infer_batch, rows=[])
    for size in args.img_size:
        row = dict(img_size=size,
                   parity_rel_err=logits_parity(parity_models, size, device))
        g = torch.Generator().manual_seed(args.seed)
        if not args.no_train:
            x = torch.randn(batch, 3, size, size, generator=g).to(
                device, memory_format=fmt)
            y = torch.randint(0, args.num_classes, (batch, ),
                              generator=g).to(device)
            calls = {k: (lambda r=r: r.train_step(x, y))
                     for k, r in runners.items()}
            row['train'] = measure_interleaved(calls, device, args.warmup,
                                               args.iters)
            for k, r in runners.items():
                row['train'][k]['optimizer'] = r.optim_impl
                if not args.no_memory:
                    static = tensor_bytes(r.module.parameters()) + \
                        optimizer_state_bytes(r.opt) + tensor_bytes([x, y])
                    r.opt.zero_grad(set_to_none=True)
                    row['train'][k]['peak_mib'] = measure_peak(
                        calls[k], device, static, cpu_mem)
            for r in runners.values():  # free gradients before inference
                r.opt.zero_grad(set_to_none=True)
        if not args.no_infer:
            xi = torch.randn(infer_batch, 3, size, size, generator=g).to(
                device, memory_format=fmt)
            calls = {k: (lambda r=r: r.infer(xi)) for k, r in runners.items()}
            row['infer'] = measure_interleaved(calls, device, args.warmup,
                                               args.iters)
            if not args.no_memory:
                for k, r in runners.items():
                    static = tensor_bytes(r.module.parameters()) + \
                        tensor_bytes([xi])
                    row['infer'][k]['peak_mib'] = measure_peak(
                        calls[k], device, static, cpu_mem)
        names = list(runners)
        for phase, b in (('train', batch), ('infer', infer_batch)):
            for v in row.get(phase, {}).values():
                v['img_s'] = b / v['wall_median_s']
                v['cpu_img_s'] = b / v['cpu_median_s']
            for name, v in row.get(phase, {}).items():
                base = row[phase][baseline_of(name, names)]
                v['ratio'] = v['img_s'] / base['img_s']
                v['ratio_cpu_time'] = v['cpu_img_s'] / base['cpu_img_s']
                v['ratio_paired'] = paired_ratio(v, base)
        result['rows'].append(row)
    result['arch'] = arch
    result['timm_name'] = (f'xcit_{stem}_p{args.patch}_224'
                           if stem else 'custom timm Xcit')
    return result


def baseline_of(name: str, names: List[str]) -> str:
    """Ratio baseline: the first model, compiled like ``name``."""
    base = names[0].split('+')[0]
    return base + ('+compile' if name.endswith('+compile') else '')


def paired_ratio(model: dict, base: dict, key: str = 'wall') -> float:
    """Median over iterations of base time / model time, each pair timed
    back to back: robust to a load that drifts during the run."""
    return statistics.median(b / m for b, m in zip(base[key], model[key]))


def print_compare(res: dict, args, device) -> str:
    cpu = device.type == 'cpu'
    lines = []
    first = res['rows'][0]
    names = list(first.get('train', first.get('infer', {})).keys())
    where = (f'cpu, {torch.get_num_threads()} threads' if cpu else
             torch.cuda.get_device_name(device))
    compiled = f'torch.compile {args.compile}, '
    for row in res['rows']:
        lines.append(
            f'\n### {args.arch}/{args.patch} at {row["img_size"]} px, '
            f'{args.dtype}, {"channels-last, " if args.channels_last else ""}'
            f'{compiled}train batch {res["batch"]}, infer batch '
            f'{res["infer_batch"]}, {where}')
        lines.append(
            f'median of {args.iters} interleaved iterations after '
            f'{args.warmup} warm-up; ratio = model / {args.models[0]} with '
            'the same compile setting; paired = median of the per-iteration '
            'ratios\n')
        if row['parity_rel_err']:
            errs = ', '.join(f'{k} {v:.1e}'
                             for k, v in row['parity_rel_err'].items())
            lines.append(f'same weights: fp32 logits rel. error vs timm: '
                         f'{errs}\n')
        head = ['model', 'phase', 'img/s', 'ratio', 'paired']
        if cpu:
            head += ['img/s (CPU time)', 'ratio (CPU time)']
        head += ['peak MiB']
        lines.append('| ' + ' | '.join(head) + ' |')
        lines.append('|' + '---|' * len(head))
        for phase in ('train', 'infer'):
            if phase not in row:
                continue
            for name in names:
                v = row[phase][name]
                b = row[phase].get(baseline_of(name, names), v)
                cells = [name, phase, f'{v["img_s"]:.1f}',
                         f'{v["img_s"] / b["img_s"]:.2f}',
                         f'{paired_ratio(v, b):.2f}']
                if cpu:
                    cells += [f'{v["cpu_img_s"]:.1f}',
                              f'{v["cpu_img_s"] / b["cpu_img_s"]:.2f}']
                peak = v.get('peak_mib')
                cells += ['-' if peak is None else f'{peak:.1f}']
                lines.append('| ' + ' | '.join(cells) + ' |')
        for phase in ('train', 'infer'):
            for name in names:
                if name.endswith('+compile') and phase in row:
                    w = row[phase][name]['warmup_s']
                    lines.append(f'{phase} {name}: first call (compile) '
                                 f'{w[0]:.1f} s')
    text = '\n'.join(lines)
    print(text)
    return text


# ------------------------------------------------------------ scaling mode
def run_scaling(args, device, cpu_mem) -> dict:
    import timm
    arch, stem = parse_arch(args.arch)
    models = {}
    need_timm = {'timm', 'xcit_mm', 'xcit_mm_ref'} & set(args.scaling_models)
    if 'crossformer' in args.scaling_models:
        torch.manual_seed(args.seed)
        models['crossformer'] = Features(build_crossformer_classifier(
            args.crossformer_arch, args.num_classes).backbone, False)
    if need_timm:
        same = same_weight_models(
            args, arch, stem,
            ['timm'] + [m for m in ('xcit_mm', 'xcit_mm_ref')
                        if m in args.scaling_models])
        for name, m in same.items():
            if name in args.scaling_models:
                models[name] = (Features(m, True) if name == 'timm' else
                                Features(m.model.backbone, False))
    if 'vit' in args.scaling_models:
        from timm.layers import set_fused_attn
        set_fused_attn(args.vit_attn == 'fused')  # read at construction
        vit = timm.create_model(args.vit, pretrained=False,
                                dynamic_img_size=True)
        set_fused_attn(True)
        models['vit'] = Features(vit, True)
    names = [m for m in args.scaling_models if m in models]
    amp = DTYPES[args.dtype]
    for m in models.values():
        m.to(device).eval()
        if args.channels_last:
            m.to(memory_format=torch.channels_last)
    fns = {
        k: (torch.compile(m, mode=args.compile_mode, dynamic=False)
            if args.compile == 'on' else m)
        for k, m in models.items()
    }
    sizes = args.sizes or ([224, 448, 896, 1792, 3584]
                           if device.type == 'cuda' else [224, 448, 896])
    iters = args.scaling_iters or min(args.iters, 5)
    fmt = torch.channels_last if args.channels_last else \
        torch.contiguous_format
    rows = []
    for size in sizes:
        x = torch.randn(1, 3, size, size).to(device, memory_format=fmt)

        def call(fn):
            ctx = (nullcontext() if amp == torch.float32 else
                   torch.autocast(device_type=device.type, dtype=amp))
            with torch.no_grad(), ctx:
                fn(x)

        calls = {k: (lambda f=fns[k]: call(f)) for k in names}
        res = measure_interleaved(calls, device, min(args.warmup, 2), iters)
        row = dict(img_size=size, tokens=(size // 16)**2 if args.patch == 16
                   else (size // 8)**2, models={})
        for k in names:
            v = res[k]
            v['ms'] = v['wall_median_s'] * 1e3
            v['cpu_ms'] = v['cpu_median_s'] * 1e3
            if not args.no_memory:
                static = tensor_bytes(models[k].parameters()) + \
                    tensor_bytes([x])
                v['peak_mib'] = measure_peak(calls[k], device, static,
                                             cpu_mem)
                if v['peak_mib'] is not None:  # without weights and input
                    v['activation_mib'] = v['peak_mib'] - static / MIB
            row['models'][k] = v
        # the ViT always uses patch 16
        row['vit_tokens'] = (size // 16)**2
        rows.append(row)
    return dict(sizes=sizes, models=names, rows=rows,
                growth=growth_exponents(rows, names))


def growth_exponents(rows: List[dict], names: List[str]) -> Dict[str, dict]:
    """Least-squares b in ``t ~ tokens^b`` over the largest sizes (up to
    three; the smallest sizes are dominated by fixed costs)."""
    out = {}
    use = rows[-3:] if len(rows) >= 3 else rows
    if len(use) < 2:
        return out
    for k in names:
        tok_key = 'vit_tokens' if k == 'vit' else 'tokens'
        xs = [math.log(r[tok_key]) for r in use]
        out[k] = {}
        for metric in ('ms', 'cpu_ms', 'activation_mib'):
            vals = [r['models'][k].get(metric) for r in use]
            if any(v is None or v <= 0 for v in vals):
                continue
            ys = [math.log(v) for v in vals]
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            sxx = sum((a - mx)**2 for a in xs)
            out[k][metric] = sum(
                (a - mx) * (b - my) for a, b in zip(xs, ys)) / sxx
    return out


def print_scaling(res: dict, args, device) -> str:
    names = res['models']
    cpu = device.type == 'cpu'
    lines = [f'\n### Scaling: batch 1, forward_features, {args.dtype}, '
             f'median of {args.scaling_iters or min(args.iters, 5)}\n']
    head = ['size', 'tokens']
    for k in names:
        head += [f'{k} ms'] + ([f'{k} CPU ms'] if cpu else []) + \
            [f'{k} MiB (act.)']
    lines.append('| ' + ' | '.join(head) + ' |')
    lines.append('|' + '---|' * len(head))
    for r in res['rows']:
        cells = [f'{r["img_size"]}', f'{r["tokens"]}']
        for k in names:
            v = r['models'][k]
            cells.append(f'{v["ms"]:.1f}')
            if cpu:
                cells.append(f'{v["cpu_ms"]:.1f}')
            p = v.get('peak_mib')
            cells.append('-' if p is None else
                         f'{p:.0f} ({v["activation_mib"]:.0f})')
        lines.append('| ' + ' | '.join(cells) + ' |')
    if res['growth']:
        lines.append('\ngrowth exponent b (time or activation memory ~ '
                     'tokens^b, largest sizes): ' + '; '.join(
                         f'{k}: ' + ', '.join(f'{m} {b:.2f}'
                                              for m, b in g.items())
                         for k, g in res['growth'].items()))
    text = '\n'.join(lines)
    print(text)
    return text


# -------------------------------------------------------------- deploy mode
def cpu_peak(threads: int) -> dict:
    """This CPU's fp32 peak: estimated from its vector units and clock,
    and measured (a 2048^3 matmul, the best of 5)."""
    est = None
    try:
        with open('/proc/cpuinfo') as f:
            info = f.read()
        flags = set(re.search(r'^flags\s*:(.*)$', info, re.M).group(1)
                    .split())
        mhz = float(re.search(r'^cpu MHz\s*:\s*([\d.]+)', info,
                              re.M).group(1))
        # FLOP per cycle per core: 2 FMA units x lanes x 2 (mul + add)
        lanes = 16 if 'avx512f' in flags else 8 if 'avx2' in flags else 4
        est = 2 * lanes * 2 * mhz / 1e3 * threads
    except (OSError, AttributeError, ValueError):
        pass
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(timed(lambda: a @ b, torch.device('cpu'))[0]
               for _ in range(5))
    return dict(estimated_gflops=est, matmul_gflops=2 * n**3 / best / 1e9)


def deploy_models(args) -> Dict[str, nn.Module]:
    """``x -> logits`` fp32 models: xcit_mm's and timm's XCiT with the same
    weights, and xcit_mm's CrossFormer."""
    arch, stem = parse_arch(args.arch)
    names = args.deploy_models.split(',')
    models = {}
    if {'timm', 'xcit_mm'} & set(names):
        same = same_weight_models(args, arch, stem, ['timm', 'xcit_mm'])
        models.update({k: v for k, v in same.items() if k in names})
    if 'crossformer' in names:
        torch.manual_seed(args.seed)
        models['crossformer'] = Logits(build_crossformer_classifier(
            args.crossformer_arch, args.num_classes))
    return {k: models[k].eval() for k in names if k in models}


def onnx_backend(model: nn.Module, size: int, path: str) -> Callable:
    """Export ``model`` (batch dimension dynamic) and return a function
    that runs it in onnxruntime on the CPU."""
    from torch.export import Dim

    from xcit_mm.apis.export import ort_session
    x = torch.randn(2, 3, size, size)
    torch.onnx.export(model, (x, ), dynamo=True, opset_version=18,
                      input_names=['image'], output_names=['logits'],
                      dynamic_shapes={'x': {0: Dim.DYNAMIC}}).save(path)
    session = ort_session(path, threads=torch.get_num_threads())
    return lambda x: torch.from_numpy(
        session.run(None, {'image': x.numpy()})[0])


def run_deploy(args, device) -> dict:
    """Latency (batch 1) and throughput (``--throughput-batch``) of every
    model on every backend, interleaved per model; outputs compared to
    eager (max relative error)."""
    import tempfile

    from xcit_mm.apis.export import max_relative_error, require_onnx
    from xcit_mm.utils.flops import get_model_complexity
    if device.type != 'cpu':
        raise SystemExit('benchmark: --mode deploy measures the CPU; run it '
                         'with --device cpu.')
    backends = args.backends.split(',')
    if 'onnxruntime' in backends:
        require_onnx()
    size = args.img_size[0]
    peak = cpu_peak(torch.get_num_threads())
    rows, tmp = [], tempfile.mkdtemp(prefix='xcit_mm_bench_')
    for name, model in deploy_models(args).items():
        flops = 2 * get_model_complexity(model, (3, size, size))['flops']
        fns = {}
        for backend in backends:
            if backend == 'eager':
                fns[backend] = model
            elif backend == 'compile':
                fns[backend] = torch.compile(model, dynamic=False)
            elif backend == 'onnxruntime':
                fns[backend] = onnx_backend(model, size,
                                            osp.join(tmp, f'{name}.onnx'))
            else:
                raise SystemExit(f'benchmark: unknown backend {backend!r}')
        for batch in (1, args.throughput_batch):
            x = torch.randn(batch, 3, size, size)
            with torch.no_grad():
                ref = model(x)
                errs = {b: max_relative_error(fn(x), ref)
                        for b, fn in fns.items()}
            calls = {b: (lambda f=fn: f(x)) for b, fn in fns.items()}
            with torch.no_grad():
                res = measure_interleaved(calls, device, args.warmup,
                                          args.iters)
            for b in backends:
                wall = res[b]['wall_median_s']
                rows.append(dict(
                    model=name, backend=b, batch=batch,
                    ms=wall * 1e3, img_s=batch / wall,
                    gflops=flops * batch / wall / 1e9, rel_err=errs[b],
                    first_call_s=res[b]['warmup_s'][0]))
    return dict(img_size=size, peak=peak, rows=rows,
                threads=torch.get_num_threads())


def print_deploy(res: dict, args) -> str:
    peak = res['peak']
    est = (f'{peak["estimated_gflops"]:.0f}' if peak['estimated_gflops']
           else 'unknown')
    lines = [f'\n### Inference backends on the CPU: {res["img_size"]} px, '
             f'fp32, {res["threads"]} thread(s), median of {args.iters}\n',
             f'CPU fp32 peak: estimated {est} GFLOP/s (vector width x 2 FMA '
             f'x clock x threads), measured {peak["matmul_gflops"]:.0f} '
             'GFLOP/s (2048^3 matmul)\n',
             '| model | backend | batch | ms | img/s | vs eager | GFLOP/s | '
             '% of matmul peak | max rel. err vs eager |',
             '|---|---|---|---|---|---|---|---|---|']
    eager = {(r['model'], r['batch']): r for r in res['rows']
             if r['backend'] == 'eager'}
    for r in res['rows']:
        base = eager.get((r['model'], r['batch']))
        ratio = f'{r["img_s"] / base["img_s"]:.2f}' if base else '-'
        lines.append(
            f'| {r["model"]} | {r["backend"]} | {r["batch"]} | '
            f'{r["ms"]:.1f} | {r["img_s"]:.1f} | {ratio} | '
            f'{r["gflops"]:.1f} | '
            f'{100 * r["gflops"] / peak["matmul_gflops"]:.0f} | '
            f'{r["rel_err"]:.1e} |')
    text = '\n'.join(lines)
    print(text)
    return text


# --------------------------------------------------------------------- main
def environment(device: torch.device) -> dict:
    import mmengine
    import timm
    env = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        python=platform.python_version(), torch=torch.__version__,
        timm=timm.__version__, mmengine=mmengine.__version__,
        device=device.type, threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(), platform=platform.platform())
    try:
        import mmpretrain
        env['mmpretrain'] = mmpretrain.__version__
    except ImportError:  # pragma: no cover
        pass
    if device.type == 'cuda':
        env['gpu'] = torch.cuda.get_device_name(device)
        env['cuda'] = torch.version.cuda
    else:
        try:
            with open('/proc/cpuinfo') as f:
                m = re.search(r'model name\s*:\s*(.*)', f.read())
            env['cpu'] = m.group(1).strip() if m else platform.processor()
        except OSError:
            env['cpu'] = platform.processor()
    return env


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
    cpu_mem = CpuMemory()
    env = environment(device)
    print(f'# benchmark: {env}')
    out = dict(env=env, args=vars(args))
    texts = []
    if args.mode in ('compare', 'all'):
        out['compare'] = run_compare(args, device, cpu_mem)
        texts.append(print_compare(out['compare'], args, device))
    if args.mode in ('scaling', 'all'):
        out['scaling'] = run_scaling(args, device, cpu_mem)
        texts.append(print_scaling(out['scaling'], args, device))
    if args.mode == 'deploy':
        out['deploy'] = run_deploy(args, device)
        texts.append(print_deploy(out['deploy'], args))
    out['memory_method'] = (
        'torch.cuda.max_memory_allocated' if device.type == 'cuda' else
        ('peak RSS (VmHWM, reset via /proc/self/clear_refs; mmap threshold '
         '64 KiB)' if cpu_mem.ok else 'unavailable'))
    out['table'] = '\n'.join(texts)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)
        print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
