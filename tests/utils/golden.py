"""Read the golden-output fixtures written from the official code by
``tools/misc/official_golden.py`` (``tests/data/golden/*.npz``)."""
import json
import os.path as osp

import numpy as np
import torch

GOLDEN_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                      'data', 'golden')


def load_golden(name):
    """Return ``(params, inputs, outputs, meta)`` of fixture ``name``
    (``tests/data/golden/<name>.npz``); tensors are torch tensors."""
    path = osp.join(GOLDEN_DIR, f'{name}.npz')
    with np.load(path, allow_pickle=False) as data:
        groups = {'param': {}, 'input': {}, 'output': {}}
        meta = {}
        for key in data.files:
            if key == 'meta':
                meta = json.loads(str(data[key]))
                continue
            group, _, rest = key.partition('.')
            groups[group][rest] = torch.from_numpy(data[key].copy())
    return groups['param'], groups['input'], groups['output'], meta


def max_relative_error(actual, expected):
    """max |a - e| / max |e|: the error measure of every golden test."""
    actual = actual.detach().double()
    expected = expected.detach().double()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return ((actual - expected).abs().max() /
            expected.abs().max().clamp_min(1e-12)).item()


def assert_golden(actual, expected, rtol=1e-4, what=''):
    err = max_relative_error(actual, expected)
    assert err <= rtol, f'{what}: max relative error {err:.3g} > {rtol:g}'
    return err
