"""tools/analysis_tools: visualize_attention, analyze_logs, browse_dataset.

One tiny classifier is trained for real (tools/train.py, 2 epochs on 8
generated images); its checkpoint and JSON log feed the attention and log
tools. The dataset browser runs on tiny generated classification, COCO and
ADE20k data through the real mmpretrain / mmdet / mmseg visualizers.
"""
import json
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch

from tests.utils import (
    REPO,
    cls_config,
    det_config,
    load_tool,
    make_ade,
    make_coco,
    make_image_folder,
    run_tool,
    seg_config,
    write_config,
)
from xcit_mm.runtime.checkpoint import safe_load

ATTN = 'tools/analysis_tools/visualize_attention.py'
LOGS = 'tools/analysis_tools/analyze_logs.py'
BROWSE = 'tools/analysis_tools/browse_dataset.py'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A real 2-epoch training run of a tiny XCiT classifier."""
    root = tmp_path_factory.mktemp('trained')
    data = make_image_folder(str(root / 'images'), per_class=4)
    work_dir = str(root / 'work')
    config = write_config(str(root / 'tiny_cls.py'),
                          cls_config(data, work_dir))
    proc = run_tool(['tools/train.py', config])
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = sorted(
        p for p in (root / 'work').glob('*/vis_data/*.json')
        if p.name != 'scalars.json')
    assert len(logs) == 1
    return dict(config=config, work_dir=work_dir, data=data,
                checkpoint=osp.join(work_dir, 'epoch_2.pth'),
                log=str(logs[0]), root=root)


def read_png(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f'{path} does not decode'
    return img


def make_test_image(root) -> str:
    """A 40x52 image with structure (a bright square on noise)."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 80, (40, 52, 3), dtype=np.uint8)
    img[8:24, 20:36] = (30, 200, 230)
    path = str(root / 'photo.png')
    cv2.imwrite(path, img)
    return path


# --------------------------------------------------------------- attention
def _official_layout(state_dict: dict, with_head: bool) -> dict:
    """xcit_mm classifier weights -> the official / DINO file layout."""
    out = {}
    for k, v in state_dict.items():
        if k.startswith('backbone.'):
            out[k[9:].replace('pos_embed.', 'pos_embeder.', 1)] = v
        elif with_head and k.startswith('head.fc.'):
            out['head.' + k[8:]] = v
    return out


def _timm_layout(state_dict: dict) -> dict:
    """xcit_mm classifier weights -> timm's layout (split q/k/v, head)."""
    out = {}
    for k, v in state_dict.items():
        if k.startswith('head.fc.'):
            out['head.' + k[8:]] = v
            continue
        k = k[9:]
        m = re.match(r'(cls_attn_blocks\.\d+\.attn\.)qkv\.(weight|bias)$', k)
        if m:
            for name, part in zip('qkv', v.chunk(3, dim=0)):
                out[f'{m.group(1)}{name}.{m.group(2)}'] = part.clone()
        else:
            out[k] = v
    return out


def _attention(tmp_path, config, checkpoint, image, name, *extra):
    out_dir = tmp_path / name
    tool = load_tool(ATTN)
    code = tool.main([config, checkpoint, image, '--out-dir', str(out_dir),
                      '--img-size', '40', '--layers', '0', '-1', *extra])
    assert code == 0
    return out_dir, dict(np.load(out_dir / 'attention.npz'))


def test_visualize_attention_formats(trained, tmp_path, capsys):
    image = make_test_image(tmp_path)
    ckpt = trained['checkpoint']
    out, ref = _attention(tmp_path, trained['config'], ckpt, image, 'mm')
    printed = capsys.readouterr().out
    assert 'xcit_mm format, class attention: yes, head: 2 classes' in printed

    # input: short side 40, long side 52 -> cropped to whole 8 px patches
    H, W = 40, 48
    assert ref['image'].shape == (H, W, 3)
    cls_attn = ref['cls_attn']
    assert cls_attn.shape == (2, H // 8, W // 8)  # (heads, Hp, Wp)
    # softmax weights over cls + patches, the cls->cls weight dropped
    assert (cls_attn >= 0).all()
    sums = cls_attn.reshape(2, -1).sum(1)
    assert ((sums > 0.3) & (sums <= 1 + 1e-5)).all()
    for block in (0, 1):
        xca = ref[f'xca_block{block}']
        assert xca.shape == (2, 16, 16)  # (heads, d, d), d = 32 / 2
        np.testing.assert_allclose(xca.sum(-1), 1, atol=1e-5)

    for name in ('input', 'cls_attn_head0', 'cls_attn_head1',
                 'cls_attn_mean'):
        img = read_png(out / f'{name}.png')
        assert img.shape == (H, W, 3), name
        assert img.std() > 5, f'{name}.png is blank'
    heads = [read_png(out / f'cls_attn_head{i}.png') for i in (0, 1)]
    assert np.abs(heads[0].astype(int) - heads[1]).mean() > 1
    for name in ('cls_attn_grid', 'xca_block0', 'xca_block1'):
        img = read_png(out / f'{name}.png')
        assert min(img.shape[:2]) > 150 and img.std() > 5, name

    # The same weights in the official / DINO / timm layouts give the same
    # maps: the tool converts each of them.
    sd = safe_load(ckpt)['state_dict']
    files = {
        'official': _official_layout(sd, with_head=True),
        'dino': _official_layout(sd, with_head=False),
        'timm': _timm_layout(sd),
    }
    for name, weights in files.items():
        path = str(tmp_path / f'{name}.pth')
        torch.save({'model': weights} if name == 'official' else weights,
                   path)
        _, arrays = _attention(tmp_path, trained['config'], path, image, name)
        for key in ('cls_attn', 'xca_block0', 'xca_block1'):
            np.testing.assert_allclose(arrays[key], ref[key], rtol=1e-4,
                                       atol=1e-6, err_msg=f'{name}: {key}')
    printed = capsys.readouterr().out
    assert 'class attention: yes, head: none' in printed  # DINO

    # Other weights give other maps (the weights are really loaded).
    other = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point()
             else v for k, v in sd.items()}
    torch.save({'state_dict': other}, str(tmp_path / 'other.pth'))
    _, arrays = _attention(tmp_path, trained['config'],
                           str(tmp_path / 'other.pth'), image, 'other')
    assert not np.allclose(arrays['cls_attn'], ref['cls_attn'], atol=1e-4)


def test_visualize_attention_backbone_only(trained, tmp_path, capsys):
    """A --backbone-only conversion has no class attention: XCA maps only."""
    image = make_test_image(tmp_path)
    dst = str(tmp_path / 'backbone.pth')
    converter = load_tool('tools/model_converters/xcit2mm.py')
    assert converter.main([trained['checkpoint'], dst,
                           '--backbone-only']) == 0
    out, arrays = _attention(tmp_path, trained['config'], dst, image, 'bb')
    printed = capsys.readouterr().out
    assert 'no class-attention weights' in printed
    assert 'cls_attn' not in arrays
    assert not list(out.glob('cls_attn*'))
    assert read_png(out / 'xca_block1.png').std() > 5
    _, ref = _attention(tmp_path, trained['config'], trained['checkpoint'],
                        image, 'ref')
    np.testing.assert_allclose(arrays['xca_block1'], ref['xca_block1'],
                               rtol=1e-4, atol=1e-6)


def test_visualize_attention_errors(trained, tmp_path, capsys):
    image = make_test_image(tmp_path)
    tool = load_tool(ATTN)
    # a checkpoint of another architecture
    wide = write_config(
        str(tmp_path / 'wide.py'),
        open(trained['config']).read().replace('embed_dims=32',
                                               'embed_dims=48'))
    assert tool.main([wide, trained['checkpoint'], image, '--out-dir',
                      str(tmp_path / 'x')]) == 1
    err = ' '.join(capsys.readouterr().err.split())
    assert 'does not fit' in err and "'embed_dims': 32" in err
    # a block index out of range
    assert tool.main([trained['config'], trained['checkpoint'], image,
                      '--out-dir', str(tmp_path / 'x'), '--layers', '5']
                     ) == 1
    assert 'out of range' in ' '.join(capsys.readouterr().err.split())
    # a missing image, a file that is not an image (a corrupt checkpoint:
    # tests/test_tools/test_bad_input.py)
    assert tool.main([trained['config'], trained['checkpoint'],
                      str(tmp_path / 'none.png'), '--out-dir',
                      str(tmp_path / 'x')]) == 1
    assert 'none.png' in ' '.join(capsys.readouterr().err.split())
    assert tool.main([trained['config'], trained['checkpoint'],
                      trained['config'], '--out-dir', str(tmp_path / 'x')]
                     ) == 1
    assert 'it is not a decodable image' in ' '.join(
        capsys.readouterr().err.split())
    # a config without XCiT
    no_xcit = write_config(str(tmp_path / 'no_xcit.py'),
                           "model = dict(type='ImageClassifier', "
                           "backbone=dict(type='ResNet', depth=18))\n")
    assert tool.main([no_xcit, trained['checkpoint'], image, '--out-dir',
                      str(tmp_path / 'x')]) == 1
    assert 'no XCiT backbone' in ' '.join(capsys.readouterr().err.split())


# -------------------------------------------------------------------- logs
def test_analyze_logs_plot_curve(trained, tmp_path):
    tool = load_tool(LOGS)
    out = str(tmp_path / 'curve.png')
    # a work dir is accepted too: its latest log is used
    assert tool.main(['plot_curve', trained['work_dir'], '--keys', 'loss',
                      'accuracy/top1', '--out', out]) == 0
    img = read_png(out)
    assert img.shape == (600, 800, 3)  # 8 x (3 per key) inches at 100 dpi
    assert img.std() > 5

    log = tool.load_json_log(trained['log'])
    assert len(log['train']) == 4 and len(log['val']) == 2  # 2 x 2 iters
    xs, ys, unit = tool.curve(log, 'loss')
    assert unit == 'epoch'
    np.testing.assert_allclose(xs, [0.5, 1, 1.5, 2])
    xs, ys, unit = tool.curve(log, 'accuracy/top1')
    np.testing.assert_allclose(xs, [1, 2])
    assert ((ys >= 0) & (ys <= 100)).all()


def test_analyze_logs_train_time(trained, capsys):
    tool = load_tool(LOGS)
    assert tool.main(['cal_train_time', trained['log']]) == 0
    printed = capsys.readouterr().out
    lines = [json.loads(line) for line in open(trained['log'])]
    train = [e for e in lines if 'lr' in e]
    # the first iteration of each epoch is left out by default
    expected = np.mean([e['time'] for e in train if e['iter'] not in (1, 3)])
    assert f'average iter time: {expected:.4f} s/iter' in printed
    result = tool.train_time(tool.load_json_log(trained['log']), True)
    np.testing.assert_allclose(result['mean_iter_time'],
                               np.mean([e['time'] for e in train]))
    assert set(result['epoch_mean_time']) == {1, 2}


def test_analyze_logs_iteration_based(trained, tmp_path, capsys):
    """An iteration-based run (like the mmseg configs): x in iterations;
    mmengine writes ``step: 0`` for its evaluations by default."""
    work_dir = str(tmp_path / 'work')
    config = write_config(str(tmp_path / 'iters.py'),
                          cls_config(trained['data'], work_dir, iters=4))
    proc = run_tool(['tools/train.py', config])
    assert proc.returncode == 0, proc.stderr[-3000:]
    tool = load_tool(LOGS)
    log = tool.load_json_log(tool.find_json_log(work_dir))
    assert [e['step'] for e in log['val']] == [0, 0]
    xs, _, unit = tool.curve(log, 'accuracy/top1')
    assert unit == 'iter' and xs.tolist() == [2, 4]
    xs, _, unit = tool.curve(log, 'loss')
    assert unit == 'iter' and xs.tolist() == [1, 2, 3, 4]
    out = str(tmp_path / 'curve.png')
    assert tool.main(['plot_curve', work_dir, '--keys', 'loss',
                      'accuracy/top1', '--out', out]) == 0
    assert read_png(out).std() > 5
    assert tool.main(['cal_train_time', work_dir]) == 0
    times = [e['time'] for e in log['train']][1:]  # first one left out
    assert f'average iter time: {np.mean(times):.4f}' in \
        capsys.readouterr().out


def test_analyze_logs_errors(trained, tmp_path, capsys):
    tool = load_tool(LOGS)
    assert tool.main(['plot_curve', trained['log'], '--keys', 'los',
                      '--out', str(tmp_path / 'x.png')]) == 1
    err = capsys.readouterr().err
    assert "Key 'los' is not in the log" in err and "'loss'" in err
    assert tool.main(['cal_train_time', str(tmp_path / 'missing')]) == 1
    assert 'No mmengine JSON log' in capsys.readouterr().err


# ------------------------------------------------------------------ browse
def _tiles(grid: np.ndarray, size: int, gap: int = 4):
    rows = (grid.shape[0] + gap) // (size + gap)
    cols = (grid.shape[1] + gap) // (size + gap)
    return [grid[r * (size + gap):r * (size + gap) + size,
                 c * (size + gap):c * (size + gap) + size]
            for r in range(rows) for c in range(cols)]


def test_browse_classification(trained, tmp_path, capsys):
    tool = load_tool(BROWSE)
    out = tmp_path / 'cls'
    assert tool.main([trained['config'], '-o', str(out), '-n', '6', '--cols',
                      '2', '--tile-size', '96']) == 0
    grids = sorted(out.glob('train_grid_*.png'))
    assert [g.name for g in grids] == ['train_grid_000.png',
                                       'train_grid_001.png']  # 4 + 2 tiles
    first = read_png(grids[0])
    assert first.shape == (2 * 96 + 4, 2 * 96 + 4, 3)
    assert read_png(grids[1]).shape == (96, 2 * 96 + 4, 3)
    assert all(t.std() > 5 for t in _tiles(first, 96))
    # the same seed draws the same augmentation, another seed another one
    again = tmp_path / 'again'
    assert tool.main([trained['config'], '-o', str(again), '-n', '6',
                      '--cols', '2', '--tile-size', '96']) == 0
    assert np.array_equal(read_png(again / grids[0].name), first)
    other = tmp_path / 'other'
    assert tool.main([trained['config'], '-o', str(other), '-n', '6',
                      '--cols', '2', '--tile-size', '96', '--seed', '1']) == 0
    assert not np.array_equal(read_png(other / grids[0].name), first)
    assert '(mmpretrain)' in capsys.readouterr().out


def test_browse_dino_views(tmp_path, capsys):
    """The DINO demo config's two crops: each sample a row of its views."""
    root = tmp_path / 'digits'  # the config reads <data_root>/train
    make_image_folder(str(root / 'train'), num_classes=3, per_class=1)
    tool = load_tool(BROWSE)
    out = tmp_path / 'dino'
    assert tool.main([osp.join(REPO, 'configs/dino/dino_xcit-digits_demo.py'),
                      '-o', str(out), '-n', '3', '--cols', '2',
                      '--tile-size', '64', '--cfg-options',
                      f'train_dataloader.dataset.data_root={root}']) == 0
    grids = sorted(out.glob('train_grid_*.png'))
    assert len(grids) == 2  # 2 samples (rows) per PNG, then 1
    first = read_png(grids[0])
    assert first.shape == (2 * 64 + 4, 2 * 64 + 4, 3)  # 2 views per row
    assert read_png(grids[1]).shape == (64, 2 * 64 + 4, 3)
    tiles = _tiles(first, 64)
    assert all(t.std() > 1 for t in tiles)
    assert not np.array_equal(tiles[0], tiles[1])  # two different crops
    assert 'drew 3 of 3 train samples' in capsys.readouterr().out


def test_browse_detection(tmp_path):
    data = make_coco(str(tmp_path / 'coco'), num_images=4, num_val=0,
                     size=64)
    config = write_config(str(tmp_path / 'det.py'), det_config(data, 64))
    tool = load_tool(BROWSE)
    out = tmp_path / 'det'
    assert tool.main([config, '-o', str(out), '--cols', '2', '--tile-size',
                      '128']) == 0
    grid = read_png(out / 'train_grid_000.png')
    tiles = _tiles(grid, 128)
    assert len(tiles) == 4
    anns = json.load(open(osp.join(data, 'annotations',
                                   'instances_train2017.json')))
    for i, tile in enumerate(tiles):
        # the pipeline resizes 64 -> 128 (no flip): compare with the raw
        # image to see the drawn boxes and masks
        raw = cv2.resize(
            cv2.imread(osp.join(data, 'train2017', f'{i:012d}.jpg')),
            (128, 128))
        changed = np.abs(tile.astype(int) - raw).max(-1) > 30
        inside = np.zeros_like(changed)
        for a in anns['annotations']:
            if a['image_id'] == i + 1:
                x, y, w, h = (int(round(2 * v)) for v in a['bbox'])
                inside[max(0, y - 12):y + h + 3, max(0, x - 3):x + w + 3] = 1
        assert changed[inside].mean() > 0.3, 'no boxes / masks drawn'
        assert changed[~inside].mean() < 0.02, 'drawing outside the objects'


def test_browse_segmentation(tmp_path):
    data = make_ade(str(tmp_path / 'ade'), num_images=2, num_val=0, size=64)
    config = write_config(str(tmp_path / 'seg.py'), seg_config(data, 64))
    tool = load_tool(BROWSE)
    out = tmp_path / 'seg'
    assert tool.main([config, '-o', str(out), '--cols', '2', '--tile-size',
                      '128']) == 0
    tiles = _tiles(read_png(out / 'train_grid_000.png'), 128)
    assert len(tiles) == 2
    from mmseg.datasets import ADE20KDataset
    palette = ADE20KDataset.METAINFO['palette']
    for i, tile in enumerate(tiles):
        name = f'ADE_train_{i:08d}'
        raw = cv2.resize(
            cv2.imread(osp.join(data, 'images', 'training', name + '.jpg')),
            (128, 128)).astype(float)
        seg = cv2.imread(
            osp.join(data, 'annotations', 'training', name + '.png'), 0)
        # SegLocalVisualizer blends 0.2 * image + 0.8 * the palette colour
        # of the label (ADE label v is class v - 1 after reduce_zero_label;
        # 0 is ignored: no colour). Compared away from region borders (the
        # 2x resize), on most pixels (class names are written on top).
        seg2 = cv2.resize(seg, (128, 128), interpolation=cv2.INTER_NEAREST)
        for v in np.unique(seg):
            inside = cv2.erode((seg2 == v).astype(np.uint8),
                               np.ones((5, 5), np.uint8)).astype(bool)
            if inside.sum() < 20:
                continue
            color = np.array(palette[v - 1][::-1]) if v else 0  # BGR
            expected = 0.2 * raw[inside] + 0.8 * color
            close = np.abs(tile[inside] - expected).max(-1) < 25
            assert close.mean() > 0.6, (v, close.mean())  # wrong: < 0.01
