"""The one safe checkpoint loader: allow-list, refusal, corrupt files."""
import argparse

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from tests.utils import RunsCode
from xcit_mm.runtime.checkpoint import safe_load, safe_loading
from xcit_mm.utils.errors import (
    CheckpointError,
    MissingFileError,
    UnsafeCheckpointError,
)


def test_refuses_code_execution(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': RunsCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match='system'):
        safe_load(path)
    # mmengine's own loading goes through the same helper, inside
    # safe_loading (what xcit_mm.Runner runs train / val / test in)
    with safe_loading(), pytest.raises(UnsafeCheckpointError):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    assert not marker.exists()


def test_refuses_general_getattr(tmp_path):
    """getattr is allowed only for HistoryBuffer's statistics methods."""
    arr = np.zeros(3)

    class _Sneaky:

        def __reduce__(self):
            return (getattr, (arr, 'tofile'))

    path = tmp_path / 'getattr.pth'
    torch.save({'x': _Sneaky()}, path)
    with pytest.raises(UnsafeCheckpointError):
        safe_load(path)


def test_allows_official_namespace_and_numpy(tmp_path):
    path = tmp_path / 'official.pth'
    torch.save({'model': {'w': torch.ones(2)},
                'args': argparse.Namespace(lr=5e-4, model='xcit'),
                'np': np.float64(1.5), 'arr': np.arange(3)}, path)
    ckpt = safe_load(path)
    assert ckpt['args'].lr == 5e-4 and ckpt['np'] == 1.5
    assert torch.equal(ckpt['model']['w'], torch.ones(2))


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / 'full.pth'
    torch.save({'w': torch.randn(1000)}, path)
    data = path.read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        safe_load(tmp_path / 'cut.pth')
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        safe_load(tmp_path / 'empty.pth')
    # not torch.save output at all: said so, whatever the unpickler raised
    # ('h' sends it to memo entry 101: KeyError)
    for text in (b'not a checkpoint at all', b'hello, a text file\n'):
        (tmp_path / 'junk.pth').write_bytes(text)
        with pytest.raises(CheckpointError, match='is not a checkpoint: it '
                           'is neither the zip archive'):
            safe_load(tmp_path / 'junk.pth')


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match='nope.pth.* does not exist'):
        safe_load(tmp_path / 'nope.pth')
    # mmengine's loading goes through the same helper
    with safe_loading(), pytest.raises(MissingFileError, match='nope.pth'):
        load_checkpoint(torch.nn.Linear(1, 1), str(tmp_path / 'nope.pth'))


def test_http_checkpoints_go_through_safe_load(tmp_path, monkeypatch):
    """A URL is downloaded once into torch hub's cache and read with the
    allow-list: an mmengine checkpoint loads, a crafted pickle is refused."""
    import functools
    import http.server
    import threading

    from mmengine.logging.history_buffer import HistoryBuffer
    served = tmp_path / 'served'
    served.mkdir()
    torch.save({'state_dict': {'w': torch.ones(2)},
                'message_hub': {'h': HistoryBuffer([1., 2.], [1, 1])}},
               served / 'ok.pth')
    marker = tmp_path / 'pwned'
    torch.save({'x': RunsCode(marker)}, served / 'evil.pth')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    url = f'http://127.0.0.1:{server.server_address[1]}'
    try:
        with safe_loading():
            ckpt = CheckpointLoader.load_checkpoint(f'{url}/ok.pth')
            assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
            assert (tmp_path / 'hub' / 'checkpoints' / 'ok.pth').is_file()
            with pytest.raises(UnsafeCheckpointError):
                CheckpointLoader.load_checkpoint(f'{url}/evil.pth')
    finally:
        server.shutdown()
    assert not marker.exists()


@pytest.mark.parametrize('scheme', ['torchvision://resnet18',
                                    'modelzoo://resnet18',
                                    'open-mmlab://detectron2/resnet50_caffe',
                                    'mmcls://resnet18'])
def test_model_zoo_schemes_read_through_the_allow_list(scheme, tmp_path,
                                                       monkeypatch):
    """mmengine resolves a model-zoo name to a URL and reads it from torch
    hub's cache when it is there (no network): a crafted file there is
    refused and does not run; a plain one loads."""
    import os.path as osp

    from mmengine.runner import checkpoint as mm_checkpoint
    tables = {'torchvision': mm_checkpoint.get_torchvision_models,
              'modelzoo': mm_checkpoint.get_torchvision_models,
              'open-mmlab': mm_checkpoint.get_external_models,
              'mmcls': mm_checkpoint.get_mmcls_models}
    prefix, name = scheme.split('://')
    url = tables[prefix]()[name]
    cached = tmp_path / 'hub' / 'checkpoints' / osp.basename(url)
    cached.parent.mkdir(parents=True)
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    marker = tmp_path / 'pwned'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'x': RunsCode(marker)},
               cached)
    with safe_loading(), pytest.raises(UnsafeCheckpointError,
                                       match='system'):
        CheckpointLoader.load_checkpoint(scheme)
    assert not marker.exists()
    torch.save({'state_dict': {'backbone.w': torch.ones(2)}}, cached)
    with safe_loading():
        ckpt = CheckpointLoader.load_checkpoint(scheme)
    # mmcls:// keeps the backbone and drops the prefix
    (value, ) = ckpt['state_dict'].values()
    assert torch.equal(value, torch.ones(2))
    # mmengine's own download function is back after the block
    from mmengine.utils.dl_utils import load_url
    assert mm_checkpoint.load_url is load_url
