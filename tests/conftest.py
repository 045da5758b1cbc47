"""pytest fixtures shared by the xcit_mm tests. The helpers themselves live
in ``tests/utils.py``: import them from there."""
import pytest

# Re-exported for test modules that still import helpers from here; new
# code imports them from tests.utils.
from tests.utils import (ARCHS, REPO, TINY_ARCH,  # noqa: F401
                         TINY_DENSE_BACKBONE, cached_mim_metafiles,
                         convert_tiny_timm_backbone, load_config,
                         make_image_folder, make_split_folders, randomize_,
                         relative_error, timm_name, tiny_dense_config,
                         tiny_teacher_cfg)


@pytest.fixture
def mim_metafiles_cached():
    """The whole test runs inside :func:`tests.utils.cached_mim_metafiles`
    (also for configs parsed while building a model, e.g. a teacher's)."""
    with cached_mim_metafiles():
        yield


@pytest.fixture
def image_folder(tmp_path):
    return make_image_folder(str(tmp_path / 'images'))
