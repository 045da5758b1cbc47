"""How the command-line layer reports errors."""
import pickle

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import load_checkpoint

from xcit_mm.cli import explain_exception


def test_plain_mmengine_loading_on_new_torch_names_the_runner(tmp_path):
    """A config without xcit_mm's runtime loads with mmengine's own loader:
    on torch >= 2.6 an mmengine checkpoint fails there; the message says
    which config key opts into the safe loader."""
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {'weight': torch.ones(1, 1),
                               'bias': torch.zeros(1)},
                'message_hub': HistoryBuffer([1.], [1])}, path)
    with pytest.raises(pickle.UnpicklingError) as info:
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    text = explain_exception(info.value)
    assert "runner_type = 'xcit_mm.Runner'" in text
    assert 'HistoryBuffer' in text
