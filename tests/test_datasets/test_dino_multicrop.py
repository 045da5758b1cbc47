"""DINO's multi-crop pipeline: per-view probabilities, measured.

The ImageNet config's MultiView runs on a few hundred tiny synthetic
images with a fixed seed; the real transforms run, and the draws of each
blur / solarisation instance are recorded on the way."""
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import TRANSFORMS

from tests.utils import REPO
from xcit_mm.datasets.transforms import adjust_hue

N = 160


def build_multiview(tiny: bool = True):
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(
        f'{REPO}/configs/_base_/datasets/imagenet_bs128_dino-multicrop.py')
    mv = cfg.train_pipeline[1]
    assert mv.type == 'MultiView' and mv.num_views == [1, 1, 8]
    if tiny:  # 24 / 8 px crops keep the test fast; nothing else changes
        mv.transforms[0][0].scale = mv.transforms[1][0].scale = 24
        mv.transforms[2][0].scale = 8
    return TRANSFORMS.build(mv)


def record_draws(multiview):
    """Wrap each view pipeline's blur / solarise so their draws are kept."""
    seen = []
    for view, pipeline in enumerate(multiview.pipelines):
        for t in pipeline.transforms:
            name = type(t).__name__
            if name not in ('GaussianBlur', 'Solarize'):
                continue
            log = dict(view=view, name=name, applied=[], sigma=[])
            disable, magnitude = t.random_disable, t.random_magnitude

            def random_disable(disable=disable, log=log):
                off = disable()
                log['applied'].append(not off)
                return off

            def random_magnitude(magnitude=magnitude, log=log):
                value = magnitude()
                log['sigma'].append(value)
                return value

            t.random_disable = random_disable
            t.random_magnitude = random_magnitude
            seen.append(log)
    return seen


def test_per_view_blur_and_solarisation_probabilities():
    multiview = build_multiview()
    logs = record_draws(multiview)
    np.random.seed(0)
    import random
    random.seed(0)
    rng = np.random.default_rng(0)
    for _ in range(N):
        img = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        out = multiview(dict(img=img))
        assert [v.shape for v in out['img']] == \
            [(24, 24, 3)] * 2 + [(8, 8, 3)] * 8
    by_key = {(log['view'], log['name']): log for log in logs}
    assert set(by_key) == {(0, 'GaussianBlur'), (1, 'GaussianBlur'),
                           (1, 'Solarize'), (2, 'GaussianBlur')}
    expected = {(0, 'GaussianBlur'): 1.0, (1, 'GaussianBlur'): 0.1,
                (1, 'Solarize'): 0.2, (2, 'GaussianBlur'): 0.5}
    for key, p in expected.items():
        applied = np.array(by_key[key]['applied'])
        n = len(applied)
        assert n == (8 * N if key[0] == 2 else N)
        # within 4 standard deviations of a binomial(n, p)
        tol = 4 * np.sqrt(p * (1 - p) / n) + 1e-9
        assert abs(applied.mean() - p) <= tol, (key, applied.mean())
    # blur sigma: drawn per image, uniform on (0.1, 2.0)
    sigmas = np.array(by_key[(2, 'GaussianBlur')]['sigma'])
    assert len(sigmas) == by_key[(2, 'GaussianBlur')]['applied'].count(True)
    assert sigmas.min() >= 0.1 and sigmas.max() <= 2.0
    assert len(np.unique(sigmas)) == len(sigmas)
    assert abs(sigmas.mean() - 1.05) < 0.1
    assert abs(np.quantile(sigmas, 0.25) - (0.1 + 1.9 / 4)) < 0.15


def test_solarize_threshold_and_hue_shift():
    solarize = TRANSFORMS.build(dict(type='Solarize', thr=128, prob=1.0))
    img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, 2)
    out = solarize(dict(img=img.copy()))['img']
    # PIL's ImageOps.solarize (DINO): invert pixels >= 128
    np.testing.assert_array_equal(out, np.where(img < 128, img, 255 - img))
    # a negative hue factor works (mmcv's raises on numpy 2) and the shift
    # is PIL's: gray stays gray, a pure colour moves round the circle
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 2] = 255  # BGR
    for factor in (-0.1, 0.1):
        shifted = adjust_hue(red, factor)
        assert shifted.shape == red.shape and shifted.dtype == np.uint8
        assert not np.array_equal(shifted, red)
    np.testing.assert_array_equal(adjust_hue(img, -0.3), img)
    np.testing.assert_array_equal(adjust_hue(red, 0.0), red)
    jitter = TRANSFORMS.build(dict(type='xcit_mm.ColorJitter', hue=0.5))
    for seed in range(8):
        np.random.seed(seed)
        assert jitter(dict(img=red.copy()))['img'].shape == red.shape


@pytest.mark.parametrize('seed', [0])
def test_views_differ_within_an_image(seed):
    multiview = build_multiview()
    np.random.seed(seed)
    img = np.random.default_rng(seed).integers(0, 256, (32, 32, 3),
                                               dtype=np.uint8)
    views = multiview(dict(img=img))['img']
    assert not np.array_equal(views[0], views[1])
    assert len({v.tobytes() for v in views[2:]}) == 8
