"""xcit_mm's registries: children of mmengine's root registries.

Every registry below has the scope ``xcit_mm`` and a lazy ``locations`` list,
so a config of any OpenMMLab library can refer to an xcit_mm component by its
scoped name, e.g. ``backbone=dict(type='xcit_mm.XCiT', arch='s12')`` inside an
mmpretrain, mmdet or mmseg config. mmengine imports ``xcit_mm.registry`` when
it meets the ``xcit_mm.`` prefix, and the registry imports its ``locations``
the first time it is searched: no ``custom_imports`` is needed.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import (
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
)
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

__all__ = [
    'MODELS', 'MODEL_WRAPPERS', 'HOOKS', 'DATASETS', 'LOOPS', 'TRANSFORMS',
    'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS',
    'RUNNERS'
]

#: Backbones, necks, heads, classifiers and losses.
MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='xcit_mm',
    locations=['xcit_mm.models'])
#: Model wrappers (DINO's distributed wrapper, which runs DINO's own
#: training step).
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='xcit_mm',
    locations=['xcit_mm.models'])
#: Hooks: the runtime's (checkpoints, non-finite losses) and DINO's.
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='xcit_mm',
    locations=['xcit_mm.runtime', 'xcit_mm.engine'])
#: Datasets (ImageNet with a clear error when the data is missing).
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='xcit_mm',
    locations=['xcit_mm.datasets'])
#: Training loops (the exactly resumable epoch and iteration loops).
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope='xcit_mm',
    locations=['xcit_mm.runtime'])
#: Optimizer wrappers (bf16 autocast on the CPU).
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='xcit_mm',
    locations=['xcit_mm.runtime'])
#: Data transforms (the image loader that skips or names unreadable files).
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='xcit_mm',
    locations=['xcit_mm.datasets'])
#: Optimizer wrapper constructors (DINO's student-only optimizer).
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope='xcit_mm',
    locations=['xcit_mm.engine'])
#: Parameter schedulers (the linear warm-up that may start at 0).
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS,
    scope='xcit_mm', locations=['xcit_mm.engine'])
#: Runners (``runner_type='xcit_mm.Runner'``: the runtime's safe checkpoint
#: loading, atomic saves and CPU launch, for the run it builds).
RUNNERS = Registry(
    'runner', parent=MMENGINE_RUNNERS, scope='xcit_mm',
    locations=['xcit_mm.runtime'])
