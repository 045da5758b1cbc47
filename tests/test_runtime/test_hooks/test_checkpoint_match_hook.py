"""CheckpointMatchHook: how strict it is follows what the run does."""
import logging
from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmengine.config import Config

from xcit_mm.runtime import CheckpointMatchHook
from xcit_mm.utils.errors import CheckpointMismatchError


def runner(phase=None, resuming=False):
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    return SimpleNamespace(model=model, phase=phase, resuming=resuming,
                           cfg=Config(), logger=logging.getLogger('t'))


def two_thirds(r) -> dict:
    """A checkpoint with 4 of the model's 6 tensors."""
    sd = r.model.state_dict()
    return dict(state_dict={k: v for k, v in sd.items()
                            if not k.startswith('2.')})


@pytest.mark.parametrize('phase, resuming, ok', [
    ('train', False, True),   # load_from for fine-tuning: >= half loads
    ('train', True, False),   # a resume needs every tensor
    ('test', False, False),   # evaluating needs every tensor
    ('val', False, False),
])
def test_finetune_mode_is_strict_outside_training(phase, resuming, ok):
    hook = CheckpointMatchHook(mode='finetune')
    r = runner(phase, resuming)
    if ok:
        hook.after_load_checkpoint(r, two_thirds(r))
    else:
        with pytest.raises(CheckpointMismatchError, match='2 missing'):
            hook.after_load_checkpoint(r, two_thirds(r))
