"""Write ``configs/*/metafile.yml`` and ``model-index.yml`` (mim metadata).

    python tools/misc/gen_metafiles.py [--configs-root configs]
        [--index model-index.yml] [--tables] [--no-flops]
        [--keep-going] [--dry-run]
    python tools/misc/gen_metafiles.py --tables-only

For every config folder except ``_base_`` (``configs/xcit``,
``configs/mask_rcnn``, ``configs/upernet``, ``configs/sem_fpn``, ...) and
every config in it whose name follows the project's scheme
(``...xcit-<arch>-p<patch>...``), the entry has:

- ``Name`` (the config's stem) and ``Config`` (its path);
- ``Metadata``: ``Parameters`` counted on the model built from the config
  (without a distillation teacher, which is not part of the trained model)
  and ``FLOPs`` by the one definition of ``get_flops.py``
  (``xcit_mm.utils.flops.FLOPS_DEFINITION``: the config's own input size,
  i.e. the test crop for classification, 800x1333 padded to the
  preprocessor's divisor (800x1344) for detection, the crop for
  segmentation; Mask R-CNN without the RoI heads), which includes the
  attention
  matmuls; ``Training Data``;
- ``Results``: the official figures of the XCiT paper / repository for the
  recipe the config reproduces (ImageNet top-1; COCO 3x box / mask AP;
  ADE20k mIoU); none for recipes without an official run (e.g. 1x);
- ``Weights`` and ``Converted From``: the official checkpoint: ImageNet
  classifiers load after ``tools/model_converters/xcit2mm.py`` (or directly
  as ``init_cfg`` Pretrained weights); the trained Mask R-CNN (3x), UperNet
  and Semantic FPN files after ``xcit2mm.py SRC DST --config CONFIG``.

``model-index.yml`` imports every metafile. ``--tables`` also rewrites the
model-zoo table of each task README (``configs/<task>/README.md``: params,
FLOPs, official results, weights) from the same data, between the lines
``<!-- model-zoo:start -->`` and ``<!-- model-zoo:end -->``; the rest of
the README is kept. ``--tables-only`` does that from the metafiles on disk,
building no model. Configs that fail to build stop
the run (exit 1) unless ``--keep-going`` (then they are left out and listed).
Run it again whenever configs change; ``tests/test_tools/test_metafiles.py``
checks that the metafiles list only existing configs and that their
Parameters match.
"""
import argparse
import glob
import importlib
import os.path as osp
import re
import sys
import warnings
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
import yaml

from xcit_mm.cli import run_cli
from xcit_mm.cli.config_checks import check_task_stack
from xcit_mm.utils.errors import MissingDependencyError

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(HERE))

PAPER = OrderedDict(Title='XCiT: Cross-Covariance Image Transformers',
                    URL='https://arxiv.org/abs/2106.09681')
OFFICIAL_CODE = 'https://github.com/facebookresearch/xcit'
URL = 'https://dl.fbaipublicfiles.com/xcit'
SIZES = dict(n='nano', t='tiny', s='small', m='medium', l='large')

# Official figures: facebookresearch/xcit README.md (ImageNet top-1 at 224,
# 224 distilled, 384 distilled), detection/README.md (Mask R-CNN 3x) and
# semantic_segmentation/README.md (UperNet 160k, Semantic FPN 80k).
TOP1 = {  # (arch, patch): (224, 224 dist, 384 dist)
    ('n12', 16): (69.9, 72.2, 75.4), ('n12', 8): (73.8, 76.3, 77.8),
    ('t12', 16): (77.1, 78.6, 80.9), ('t12', 8): (79.7, 81.2, 82.4),
    ('t24', 16): (79.4, 80.4, 82.6), ('t24', 8): (81.9, 82.6, 83.7),
    ('s12', 16): (82.0, 83.3, 84.7), ('s12', 8): (83.4, 84.2, 85.1),
    ('s24', 16): (82.6, 83.9, 85.1), ('s24', 8): (83.9, 84.9, 85.6),
    ('m24', 16): (82.7, 84.3, 85.4), ('m24', 8): (83.7, 85.1, 85.8),
    ('l24', 16): (82.9, 84.9, 85.8), ('l24', 8): (84.4, 85.4, 86.0),
}
MASK_RCNN_3X = {  # (arch, patch): (box AP, mask AP)
    ('t12', 16): (42.7, 38.5), ('t12', 8): (44.5, 40.3),
    ('s12', 16): (45.3, 40.8), ('s12', 8): (47.0, 42.3),
    ('s24', 16): (46.5, 41.8), ('s24', 8): (48.1, 43.0),
    ('m24', 16): (46.7, 42.0), ('m24', 8): (48.5, 43.7),
}
UPERNET = {('t12', 16): 41.5, ('t12', 8): 43.5, ('s12', 16): 45.9,
           ('s12', 8): 46.6, ('s24', 16): 46.9, ('s24', 8): 48.1,
           ('m24', 16): 47.6, ('m24', 8): 48.4}
SEM_FPN = {('t12', 16): 38.1, ('t12', 8): 39.9, ('s12', 16): 43.9,
           ('s12', 8): 44.2, ('s24', 16): 44.6, ('s24', 8): 47.1,
           ('m24', 16): 45.9, ('m24', 8): 46.9}

#: The official det/seg checkpoints are mmdet 2.x / mmseg 0.x files whose
#: backbone holds the multi-scale adapter (``backbone.fpn1-4``);
#: ``xcit2mm.py --config`` maps them onto the configs here
#: (:mod:`xcit_mm.models.backbones.xcit_convert`), so they are listed as
#: Weights. False leaves them out (their figures stay, as Results).
DENSE_WEIGHTS = True

COLLECTIONS = {
    'xcit': ('XCiT', ['Cross-Covariance Attention', 'Local Patch '
                      'Interaction', 'Class Attention', 'LayerScale']),
    'mask_rcnn': ('Mask R-CNN XCiT', ['XCiT', 'FPN', 'RPN', 'RoIAlign']),
    'upernet': ('UPerNet XCiT', ['XCiT', 'UPerNet']),
    'sem_fpn': ('Semantic FPN XCiT', ['XCiT', 'FPN']),
}
NAME_RE = re.compile(r'xcit-(?P<arch>[ntsml]\d{2})-p(?P<patch>8|16)')


def official_name(arch: str) -> str:
    """'s12' -> 'small_12' (the official file-name stem)."""
    return f'{SIZES[arch[0]]}_{arch[1:]}'


def describe(folder: str, stem: str) -> Optional[dict]:
    """Training data, official results and weights for one config name.

    Returns None for a config outside the naming scheme.
    """
    m = NAME_RE.search(stem)
    if m is None:
        return None
    arch, patch = m.group('arch'), int(m.group('patch'))
    key, official = (arch, patch), official_name(arch)
    out = dict(results=[], weights=None)
    if '_in1k' in stem:
        out['data'] = 'ImageNet-1k'
        variants = {'_in1k': (0, '224'), '_in1k-dist': (1, '224_dist'),
                    '_in1k-dist-384px': (2, '384_dist')}
        for suffix, (col, tag) in variants.items():
            if stem.endswith(suffix) and key in TOP1:
                out['results'] = [OrderedDict(
                    Task='Image Classification', Dataset='ImageNet-1k',
                    Metrics=OrderedDict([('Top 1 Accuracy', TOP1[key][col])
                                         ]))]
                out['weights'] = f'{URL}/xcit_{official}_p{patch}_{tag}.pth'
    elif '_coco' in stem:
        out['data'] = 'COCO'
        if folder == 'mask_rcnn' and '_3x_' in stem and key in MASK_RCNN_3X:
            box, mask = MASK_RCNN_3X[key]
            out['results'] = [
                OrderedDict(Task='Object Detection', Dataset='COCO',
                            Metrics=OrderedDict([('box AP', box)])),
                OrderedDict(Task='Instance Segmentation', Dataset='COCO',
                            Metrics=OrderedDict([('mask AP', mask)])),
            ]
            if DENSE_WEIGHTS:
                out['weights'] = (f'{URL}/coco/maskrcnn_xcit_{official}_'
                                  f'p{patch}.pth')
    elif 'ade20k' in stem:
        out['data'] = 'ADE20K'
        table, prefix = {'upernet': (UPERNET, 'upernet'),
                         'sem_fpn': (SEM_FPN, 'sem_fpn')}.get(
                             folder, (None, None))
        if table is not None and key in table:
            out['results'] = [OrderedDict(
                Task='Semantic Segmentation', Dataset='ADE20K',
                Metrics=OrderedDict(mIoU=table[key]))]
            if DENSE_WEIGHTS:
                out['weights'] = (f'{URL}/ade/{prefix}_xcit_{official}_'
                                  f'p{patch}.pth')
    return out


def input_shape(cfg) -> Tuple[int, int, int]:
    """(C, H, W) at which the config's model is measured: its own input
    size (``xcit_mm.utils.flops.config_input_shape``)."""
    from xcit_mm.utils.flops import config_input_shape
    return config_input_shape(cfg)


def build_model(cfg, device: str = 'meta') -> torch.nn.Module:
    """Build ``cfg.model`` in its library's scope, without loading weights.

    ``device='meta'`` allocates nothing (enough to count parameters); a
    model that cannot be built there is built on the CPU.
    """
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if device == 'meta':
        try:
            with torch.device('meta'):
                return MODELS.build(cfg.model)
        except Exception:  # noqa: BLE001 - some inits need real tensors
            pass
    return MODELS.build(cfg.model)


def count_params(model: torch.nn.Module) -> int:
    """Parameters of the trained model: a distillation teacher (a submodule
    named ``teacher*``) is frozen, not saved and not counted."""
    return sum(
        p.numel() for name, p in model.named_parameters()
        if not any(part.startswith('teacher') for part in name.split('.')))


def flop_counter():
    """``count_config_flops`` of ``xcit_mm.utils.flops`` (the one FLOP
    definition, that of ``tools/analysis_tools/get_flops.py``), or
    (None, reason)."""
    try:
        module = importlib.import_module('xcit_mm.utils.flops')
    except ImportError as e:
        return None, f'xcit_mm.utils.flops is not available ({e})'
    return module.count_config_flops, None


def measure_flops(fn, cfg, shape) -> int:
    """FLOPs of the config's model at ``shape`` (C, H, W), by
    ``xcit_mm.utils.flops.FLOPS_DEFINITION``."""
    with torch.no_grad():
        return int(fn(cfg, tuple(shape[1:]))['flops'])


def model_entry(cfg_path: str, rel_path: str, folder: str, collection: str,
                flops_fn, cache: Dict) -> Optional[OrderedDict]:
    from mmengine.config import Config
    stem = osp.splitext(osp.basename(cfg_path))[0]
    info = describe(folder, stem)
    if info is None:
        print(f'  skip {rel_path}: not named like xcit-<arch>-p<patch>')
        return None
    cfg = Config.fromfile(cfg_path)
    check_task_stack(cfg, f'The config {rel_path}')
    shape = input_shape(cfg)
    # configs that differ only in schedule or data build the same model
    key = (cfg.get('default_scope'), repr(cfg.model), shape)
    if key not in cache:
        params = count_params(build_model(cfg))
        flops = measure_flops(flops_fn, cfg, shape) if flops_fn else None
        cache[key] = (params, flops)
    params, flops = cache[key]
    meta = OrderedDict()
    if flops is not None:
        meta['FLOPs'] = flops
    meta['Parameters'] = params
    if 'data' in info:
        meta['Training Data'] = info['data']
    entry = OrderedDict(Name=stem, Config=rel_path)
    entry['In Collection'] = collection
    entry['Metadata'] = meta
    if info['results']:
        entry['Results'] = info['results']
    if info['weights']:
        entry['Weights'] = info['weights']
        entry['Converted From'] = OrderedDict(Weights=info['weights'],
                                              Code=OFFICIAL_CODE)
    gflops = f'{flops / 1e9:.2f} GFLOPs' if flops else 'FLOPs n/a'
    print(f'  {stem}: {params / 1e6:.2f} M params, {gflops} at '
          f'{shape[1]}x{shape[2]}')
    return entry


#: The lines between which --tables writes a task README's model-zoo table.
TABLE_START = '<!-- model-zoo:start -->'
TABLE_END = '<!-- model-zoo:end -->'


def markdown_table(data: dict, base: str, index_root: str) -> str:
    """The model-zoo table of one metafile's data; config links relative
    to the folder ``base`` (the task README's)."""
    metrics = []
    for m in data['Models']:
        for r in m.get('Results', []):
            for k in r['Metrics']:
                if k not in metrics:
                    metrics.append(k)
    header = ['config', 'params (M)', 'FLOPs (G)'] + [
        f'{k} (official)' for k in metrics] + ['weights']
    from xcit_mm.utils.flops import FLOPS_DEFINITION
    out = [FLOPS_DEFINITION, '',
           '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for m in data['Models']:
        meta = m['Metadata']
        values = {k: v for r in m.get('Results', [])
                  for k, v in r['Metrics'].items()}
        link = osp.relpath(osp.join(index_root, m['Config']),
                           base).replace(osp.sep, '/')
        row = [f'[{m["Name"]}]({link})',
               f'{meta["Parameters"] / 1e6:.1f}',
               f'{meta["FLOPs"] / 1e9:.1f}' if 'FLOPs' in meta else '-']
        row += [str(values.get(k, '-')) for k in metrics]
        row.append(f'[official]({m["Weights"]})' if 'Weights' in m else '-')
        out.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(out) + '\n'


def write_table(readme: str, table: str) -> bool:
    """Replace the block between TABLE_START and TABLE_END in ``readme``.

    Returns False (and changes nothing) when the README lacks the markers.
    """
    with open(readme) as f:
        text = f.read()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        return False
    head = text[:start + len(TABLE_START)]
    new = f'{head}\n{table}{text[end:]}'
    if new != text:
        with open(readme, 'w') as f:
            f.write(new)
    return True


def write_tables(metafiles, index_root: str) -> list:
    """Rewrite the table of each metafile's task README; returns the
    READMEs written."""
    written = []
    for path, data in metafiles:
        folder = osp.dirname(path)
        readme = osp.join(folder, 'README.md')
        if not osp.exists(readme):
            print(f'  no {readme}: no table written')
        elif write_table(readme, markdown_table(data, folder, index_root)):
            written.append(readme)
        else:
            print(f'  {readme} has no {TABLE_START} / {TABLE_END} lines: '
                  'table not written')
    return written


def tables_from_metafiles(configs_root: str, index_path: str) -> list:
    """--tables-only: the tables from the metafiles on disk."""
    index_root = osp.dirname(osp.abspath(index_path))
    metafiles = []
    for path in sorted(glob.glob(osp.join(configs_root, '*',
                                          'metafile.yml'))):
        with open(path) as f:
            metafiles.append((path, yaml.safe_load(f)))
    written = write_tables(metafiles, index_root)
    print('wrote ' + (', '.join(written) or 'no table'))
    return written


def _represent_ordered(dumper, data):
    return dumper.represent_mapping('tag:yaml.org,2002:map', data.items())


def dump_yaml(data, path: str) -> None:
    yaml.add_representer(OrderedDict, _represent_ordered,
                         Dumper=yaml.SafeDumper)
    with open(path, 'w') as f:
        yaml.safe_dump(data, f, sort_keys=False, width=79)


def generate(configs_root: str, index_path: str, with_flops: bool = True,
             keep_going: bool = False, dry_run: bool = False,
             tables: bool = False) -> dict:
    """Write the metafiles and the model index. Returns a summary."""
    flops_fn, reason = flop_counter() if with_flops else (None,
                                                         '--no-flops')
    if flops_fn is None:
        print(f'NOTE: writing Parameters only, no FLOPs: {reason}.')
    index_root = osp.dirname(osp.abspath(index_path))
    metafiles, failures, cache = [], [], {}
    for folder_path in sorted(glob.glob(osp.join(configs_root, '*', ''))):
        folder = osp.basename(osp.normpath(folder_path))
        if folder.startswith('_'):
            continue
        collection, architecture = COLLECTIONS.get(
            folder, (f'XCiT {folder}', ['XCiT']))
        print(f'{folder}:')
        models = []
        for cfg_path in sorted(glob.glob(osp.join(folder_path, '*.py'))):
            rel = osp.relpath(cfg_path, index_root).replace(osp.sep, '/')
            try:
                entry = model_entry(cfg_path, rel, folder, collection,
                                    flops_fn, cache)
            except MissingDependencyError:
                if not keep_going:  # the light install: one paragraph
                    raise
                failures.append(f'{rel}: needs mmcv.ops (light install)')
                continue
            except Exception as e:  # noqa: BLE001 - report and go on
                failures.append(f'{rel}: {type(e).__name__}: {e}')
                print(f'  FAILED {rel}: {type(e).__name__}: {e}')
                continue
            if entry is not None:
                models.append(entry)
        if not models:
            continue
        collection_entry = OrderedDict(Name=collection)
        collection_entry['Metadata'] = OrderedDict(Architecture=architecture)
        collection_entry['Paper'] = PAPER
        readme = osp.join(folder_path, 'README.md')
        if osp.exists(readme):
            collection_entry['README'] = osp.relpath(
                readme, index_root).replace(osp.sep, '/')
        metafile = osp.join(folder_path, 'metafile.yml')
        data = OrderedDict(Collections=[collection_entry], Models=models)
        metafiles.append((metafile, data))
    if failures and not keep_going:
        print(f'{len(failures)} config(s) failed to build; nothing written '
              '(use --keep-going to leave them out):\n  ' +
              '\n  '.join(failures))
        return dict(metafiles=[], failures=failures)
    if not dry_run:
        for path, data in metafiles:
            dump_yaml(data, path)
        # metafiles written by hand (families this script does not
        # generate, e.g. CrossFormer's) stay in the index
        kept = glob.glob(osp.join(configs_root, '*', 'metafile.yml'))
        dump_yaml(OrderedDict(Import=sorted({
            osp.relpath(p, index_root).replace(osp.sep, '/')
            for p in [p for p, _ in metafiles] + kept
        })), index_path)
    readmes = write_tables(metafiles, index_root) if tables and \
        not dry_run else []
    print(('would write ' if dry_run else 'wrote ') + ', '.join(
        [p for p, _ in metafiles] + [index_path] + readmes))
    return dict(metafiles=[p for p, _ in metafiles], failures=failures,
                flops=flops_fn is not None)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write configs/*/metafile.yml and model-index.yml')
    parser.add_argument('--configs-root', default=osp.join(ROOT, 'configs'))
    parser.add_argument('--index', default=osp.join(ROOT,
                                                    'model-index.yml'),
                        help='model-index.yml to write; Config paths are '
                        'relative to its folder')
    parser.add_argument('--no-flops', action='store_true',
                        help='Parameters only (faster)')
    parser.add_argument('--keep-going', action='store_true',
                        help='leave out configs that fail to build')
    parser.add_argument('--dry-run', action='store_true',
                        help='compute and print, write nothing')
    parser.add_argument('--tables', action='store_true',
                        help='also rewrite the model-zoo table of each '
                        'configs/<task>/README.md (between its '
                        f'{TABLE_START} and {TABLE_END} lines)')
    parser.add_argument('--tables-only', action='store_true',
                        help='rewrite the README tables from the metafiles '
                        'on disk; build no model, write no metafile')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    if args.tables_only:
        tables_from_metafiles(args.configs_root, args.index)
        return 0
    summary = run_cli('gen_metafiles.py', lambda: generate(
        args.configs_root, args.index, not args.no_flops, args.keep_going,
        args.dry_run, args.tables))
    if summary['failures'] and not args.keep_going:
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
