"""Run a trained model on images: classes, boxes and masks, segmentation
maps, or DINO features.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...]
        [--out-dir DIR] [--device cpu] [--topk 5] [--score-thr 0.3]
        [--retrieve QUERY [--topk K]] [--cfg-options k=v ...]

INPUT is an image file, a folder (its images, recursively) or a glob
pattern in quotes (``'data/val/*/*.png'``). The task follows from the config
(:func:`xcit_mm.apis.task_of`) and runs through the OpenMMLab inferencer
of its library (:func:`xcit_mm.apis.get_inferencer`):

- classification: one line per image with the ``--topk`` classes and
  scores; ``--out-dir`` gets ``vis/<image>.png`` (the image with its class)
  and ``results.json``;
- detection (Mask R-CNN, RetinaNet): the number of instances above
  ``--score-thr`` and the best ones; ``--out-dir`` gets ``vis/`` (boxes and
  masks drawn) and ``preds/`` (one JSON per image);
- segmentation (UperNet, Semantic FPN): the classes covering most of the
  image; ``--out-dir`` gets ``vis/`` (the map over the image) and ``pred/``
  (the class map as a PNG);
- features (DINO): the frozen teacher's class-token feature of each image;
  ``--out-dir`` gets ``features/<image>.npy``. With ``--retrieve QUERY``
  the images of INPUT are ranked by cosine similarity to QUERY's feature
  and the ``--topk`` nearest are printed (and written to
  ``retrieval.json``).

An image that cannot be read is reported in one paragraph and skipped; the
other images go on, and the exit status is 1 at the end.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys

from xcit_mm.cli import add_config_args, load_config, run_cli
from xcit_mm.cli.report import format_tool_error
from xcit_mm.utils.errors import (
    ConfigError,
    ImageLoadError,
    MissingFileError,
)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff',
                    '.webp', '.ppm', '.pgm')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.split('\n')[6:]))
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint saved by training')
    parser.add_argument('inputs', nargs='+',
                        help='image files, folders or glob patterns')
    add_config_args(parser, config=False)
    parser.add_argument('--out-dir', help='write pictures, predictions and '
                        'features here')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--topk', type=int, default=5,
                        help='classes per image, or neighbours of '
                        '--retrieve')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: the least score shown')
    parser.add_argument('--retrieve', metavar='QUERY',
                        help='features: rank the INPUT images by similarity '
                        'to this image')
    return parser.parse_args(argv)


def expand_inputs(inputs):
    """Image paths of files, folders (recursive) and glob patterns, in
    order, each once. A name that matches nothing is an error."""
    paths = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(
                p for p in glob.glob(osp.join(item, '**', '*'),
                                     recursive=True)
                if p.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(p))
        elif osp.isfile(item):
            found = [item]
        else:
            found = sorted(p for p in glob.glob(item, recursive=True)
                           if osp.isfile(p))
        if not found:
            raise MissingFileError(
                f'{item!r} is not an image file, a folder with images or a '
                'glob pattern that matches files. Check the path (relative '
                'to the directory you run from).')
        paths.extend(p for p in found if p not in paths)
    return paths


def check_image(path: str) -> None:
    """An :class:`ImageLoadError` unless ``path`` decodes as an image."""
    import mmcv

    from xcit_mm.datasets.transforms import describe_unreadable
    try:
        ok = mmcv.imread(path) is not None
    except Exception:  # noqa: B902 (decoder errors of any kind)
        ok = False
    if not ok:
        raise ImageLoadError(
            f'Cannot read image {path}: {describe_unreadable(path)}. It was '
            'skipped; replace or remove the file.')


def stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def classify(inferencer, path, args, out):
    kwargs = {}
    if args.out_dir:
        kwargs['show_dir'] = osp.join(args.out_dir, 'vis')
        os.makedirs(kwargs['show_dir'], exist_ok=True)
    result, = inferencer(path, **kwargs)
    classes = inferencer.classes
    scores = result['pred_scores']
    top = scores.argsort()[::-1][:args.topk]
    names = [classes[i] if classes else str(i) for i in top]
    print(f'{path}: ' + ', '.join(f'{n} {scores[i]:.3f}'
                                  for n, i in zip(names, top)))
    out[path] = dict(pred_class=result['pred_class'],
                     pred_score=float(result['pred_score']),
                     topk=[[n, float(scores[i])] for n, i in zip(names, top)])


def detect(inferencer, path, args, out):
    res = inferencer(path, out_dir=args.out_dir or '',
                     no_save_vis=not args.out_dir,
                     no_save_pred=not args.out_dir,
                     pred_score_thr=args.score_thr)
    pred, = res['predictions']
    classes = inferencer.model.dataset_meta.get('classes') or ()
    keep = [i for i, s in enumerate(pred['scores']) if s >= args.score_thr]
    best = ', '.join(
        f'{classes[pred["labels"][i]] if classes else pred["labels"][i]} '
        f'{pred["scores"][i]:.2f} at {[round(v) for v in pred["bboxes"][i]]}'
        for i in keep[:args.topk])
    masks = ' with masks' if 'masks' in pred else ''
    print(f'{path}: {len(keep)} instance(s) with score >= {args.score_thr}'
          f'{masks}' + (f': {best}' if best else ''))
    out[path] = dict(instances=len(keep))


def segment(inferencer, path, args, out):
    import numpy as np
    res = inferencer(path, out_dir=args.out_dir or '')
    seg = np.asarray(res['predictions'] if isinstance(res, dict) else res)
    labels, counts = np.unique(seg, return_counts=True)
    order = counts.argsort()[::-1][:args.topk]
    classes = inferencer.model.dataset_meta.get('classes') or ()
    parts = [f'{classes[labels[i]] if classes else labels[i]} '
             f'{counts[i] / seg.size:.1%}' for i in order]
    print(f'{path}: {seg.shape[0]}x{seg.shape[1]} map; ' + ', '.join(parts))
    out[path] = {str(classes[labels[i]] if classes else labels[i]):
                 float(counts[i] / seg.size) for i in order}


def features(inferencer, path, args, out):
    import numpy as np
    feat, = inferencer(path)
    feat = feat.float().cpu().numpy()
    if args.out_dir:
        folder = osp.join(args.out_dir, 'features')
        os.makedirs(folder, exist_ok=True)
        np.save(osp.join(folder, stem(path) + '.npy'), feat)
    if not args.retrieve:
        print(f'{path}: feature {feat.shape[0]}-d, norm '
              f'{np.linalg.norm(feat):.3f}')
    out[path] = feat


RUNNERS = dict(classification=classify, detection=detect,
               segmentation=segment, features=features)


def retrieve(inferencer, args, feats: dict) -> dict:
    """The ``--topk`` images of ``feats`` nearest to ``args.retrieve``."""
    import numpy as np
    check_image(args.retrieve)
    query, = inferencer(args.retrieve)
    query = query.float().cpu().numpy()
    paths = [p for p in feats if osp.abspath(p) != osp.abspath(args.retrieve)]
    bank = np.stack([feats[p] for p in paths])
    sims = bank @ query / (np.linalg.norm(bank, axis=1) *
                           np.linalg.norm(query) + 1e-12)
    order = sims.argsort()[::-1][:args.topk]
    print(f'nearest to {args.retrieve} (cosine similarity of the teacher '
          'features):')
    for rank, i in enumerate(order, 1):
        print(f'{rank:3d}. {sims[i]:.4f} {paths[i]}')
    return {paths[i]: float(sims[i]) for i in order}


def infer(args) -> int:
    from xcit_mm.apis import get_inferencer, task_of
    cfg = load_config(args)
    task = task_of(cfg)
    if args.retrieve and task != 'features':
        raise ConfigError(
            f'--retrieve needs a feature model (DINO); {args.config} is a '
            f'{task} model.', config_key='model')
    paths = expand_inputs(args.inputs)
    inferencer = get_inferencer(cfg, args.checkpoint, args.device)
    run = RUNNERS[task]
    out, failed = {}, []
    for path in paths:
        try:
            check_image(path)
            run(inferencer, path, args, out)
        except ImageLoadError as e:
            failed.append(path)
            print(format_tool_error('infer.py', e), file=sys.stderr)
    if args.retrieve:
        out = dict(query=args.retrieve, nearest=retrieve(inferencer, args,
                                                         out))
    if args.out_dir and task != 'features' or args.retrieve:
        name = 'retrieval.json' if args.retrieve else 'results.json'
        if args.out_dir:
            os.makedirs(args.out_dir, exist_ok=True)
            with open(osp.join(args.out_dir, name), 'w') as f:
                json.dump(out, f, indent=1)
    done = len(paths) - len(failed)
    print(f'{done} of {len(paths)} image(s) done'
          + (f'; {len(failed)} could not be read' if failed else '')
          + (f'; outputs in {args.out_dir}' if args.out_dir else ''))
    return 1 if failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli('infer.py', lambda: infer(args), debug=args.debug,
                   exit=False)


if __name__ == '__main__':
    sys.exit(main())
