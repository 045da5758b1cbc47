"""The xcit_mm tests' shared helpers, one module per purpose (pytest
fixtures live in ``tests/conftest.py``; the fault-injection hooks that
configs import by name are in ``tests/faults.py``). Every public name is
re-exported here: ``from tests.utils import make_coco, run_tool``.

- :mod:`tests.utils.tools`: ``REPO``, ``run_tool(args, timeout, cwd, **env)``
  (``python tools/...`` as a user runs it, ``PYTHONPATH=REPO`` first,
  ``OMP_NUM_THREADS=1``), ``tool_env``, ``explain(proc)``,
  ``load_tool(relpath)``, ``free_port()``.
- :mod:`tests.utils.configs`: ``load_config`` (``Config.fromfile`` with the
  mim metafiles read once), ``cached_mim_metafiles``, ``write_config``,
  ``cls_config`` / ``det_config`` / ``seg_config`` (tiny config texts that
  name xcit_mm's runtime as the shipped runtime bases do),
  ``tiny_teacher_cfg``, ``NORM``.
- :mod:`tests.utils.dense`: ``tiny_dense_config`` (a real det / seg config
  made cheap, structure unchanged).
- :mod:`tests.utils.data`: ``make_image_folder``, ``make_split_folders``,
  ``make_coco`` (COCO 2017 layout, boxes and polygon masks), ``make_ade``
  (ADEChallengeData2016 layout).
- :mod:`tests.utils.models`: ``ARCHS``, ``timm_name``, ``TINY_ARCH``,
  ``TINY_DENSE_BACKBONE``, ``randomize_``, ``relative_error``,
  ``convert_tiny_timm_backbone``.
- :mod:`tests.utils.golden`: ``load_golden`` (a fixture of
  ``tests/data/golden``), ``max_relative_error``, ``assert_golden``.
- :mod:`tests.utils.checkpoints`: ``RunsCode`` (a pickle that runs a command
  when loaded).
"""
from tests.utils.checkpoints import RunsCode
from tests.utils.configs import (
                                 NORM,
                                 cached_mim_metafiles,
                                 cls_config,
                                 det_config,
                                 load_config,
                                 seg_config,
                                 tiny_teacher_cfg,
                                 write_config,
)
from tests.utils.data import (
                                 make_ade,
                                 make_coco,
                                 make_image_folder,
                                 make_split_folders,
)
from tests.utils.dense import tiny_dense_config
from tests.utils.golden import assert_golden, load_golden, max_relative_error
from tests.utils.models import (
                                 ARCHS,
                                 TINY_ARCH,
                                 TINY_DENSE_BACKBONE,
                                 convert_tiny_timm_backbone,
                                 randomize_,
                                 relative_error,
                                 timm_name,
)
from tests.utils.tools import (
                                 REPO,
                                 explain,
                                 free_port,
                                 load_tool,
                                 run_tool,
                                 tool_env,
)

__all__ = [
    'RunsCode', 'NORM', 'cached_mim_metafiles', 'cls_config', 'det_config',
    'load_config', 'seg_config', 'tiny_teacher_cfg', 'write_config',
    'make_ade', 'make_coco', 'make_image_folder', 'make_split_folders',
    'tiny_dense_config', 'ARCHS', 'TINY_ARCH', 'TINY_DENSE_BACKBONE',
    'convert_tiny_timm_backbone', 'randomize_', 'relative_error',
    'timm_name', 'REPO', 'explain', 'free_port', 'load_tool', 'run_tool',
    'tool_env', 'assert_golden', 'load_golden', 'max_relative_error'
]
