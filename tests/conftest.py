"""pytest fixtures shared by the xcit_mm tests. The helpers themselves live
in the ``tests/utils`` package: import them from there."""
import pytest

from tests.utils import cached_mim_metafiles, make_image_folder


@pytest.fixture
def mim_metafiles_cached():
    """The whole test runs inside :func:`tests.utils.cached_mim_metafiles`
    (also for configs parsed while building a model, e.g. a teacher's)."""
    with cached_mim_metafiles():
        yield


@pytest.fixture
def image_folder(tmp_path):
    return make_image_folder(str(tmp_path / 'images'))
