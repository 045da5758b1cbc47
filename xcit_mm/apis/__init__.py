"""Inference from Python: xcit_mm checkpoints in the OpenMMLab
inferencers (see :mod:`xcit_mm.apis.inference`)."""
from xcit_mm.apis.inference import TASKS, get_inferencer, init_model, task_of

__all__ = ['TASKS', 'get_inferencer', 'init_model', 'task_of']
