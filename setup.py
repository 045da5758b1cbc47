"""Install xcit_mm: ``pip install -e .`` (see tools/install.sh for the
whole tested stack, including mmcv with its compiled ops).

Like the OpenMMLab repositories, the package carries its configs and tools
in ``xcit_mm/.mim/`` (``configs/``, ``tools/``, ``model-index.yml`` and
``requirements/``), which is where ``mim train xcit_mm CONFIG`` and
``mim test`` look for them. A wheel (``pip install .``, ``pip wheel .``)
gets copies, written into the build directory only; an editable install
(``pip install -e .``, ``setup.py develop``) gets symlinks in the source
tree, so edits show up at once. ``MANIFEST.in`` puts the same files in the
sdist.
"""
import os
import os.path as osp
import platform
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
#: What ``xcit_mm/.mim`` holds (those that exist are shipped).
MIM_FILES = ('configs', 'tools', 'model-index.yml', 'requirements')


def read_requirements(name):
    """Requirement lines of requirements/NAME.txt (comments dropped)."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        return [
            line.split('#')[0].strip() for line in f
            if line.split('#')[0].strip() and not line.startswith('-')
        ]


def read_version():
    ns = {}
    with open(osp.join(HERE, 'xcit_mm', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


def add_mim_files(target: str, root: str = HERE, mode: str = 'copy') -> list:
    """Place MIM_FILES of ``root`` in ``target`` (``.../xcit_mm/.mim``).

    Args:
        target (str): The ``.mim`` folder to fill (created if needed).
        root (str): Repository root holding configs/, tools/, ...
        mode (str): ``'copy'`` (wheels) or ``'symlink'`` (editable
            installs; relative links into the source tree).

    Returns:
        list: The paths written.
    """
    os.makedirs(target, exist_ok=True)
    written = []
    for name in MIM_FILES:
        src = osp.join(root, name)
        if not osp.exists(src):
            continue
        dst = osp.join(target, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, target), dst)
        elif osp.isdir(src):
            shutil.copytree(
                src, dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)
        written.append(dst)
    return written


def _editable_mode() -> str:
    # Windows needs privileges for symlinks: copy there.
    return 'copy' if platform.system() == 'Windows' else 'symlink'


class BuildPyWithMim(build_py):
    """build_py that also puts configs/ and tools/ into ``xcit_mm/.mim``."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):  # pip install -e (PEP 660)
            add_mim_files(osp.join(HERE, 'xcit_mm', '.mim'),
                          mode=_editable_mode())
        else:  # wheel: copies inside the build directory, source untouched
            add_mim_files(osp.join(self.build_lib, 'xcit_mm', '.mim'))


if 'develop' in sys.argv:  # legacy `python setup.py develop`
    add_mim_files(osp.join(HERE, 'xcit_mm', '.mim'), mode=_editable_mode())

setup(
    name='xcit_mm',
    version=read_version(),
    description='XCiT (Cross-Covariance Image Transformers) for mmengine, '
    'mmpretrain, mmdet and mmsegmentation',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    license_files=['LICENSE'],
    packages=find_packages(include=['xcit_mm', 'xcit_mm.*']),
    include_package_data=True,
    python_requires='>=3.9',
    install_requires=read_requirements('runtime'),
    extras_require={
        'mim': read_requirements('mminstall'),
        'optional': read_requirements('optional'),
        'tests': read_requirements('tests'),
        'deploy': read_requirements('deploy'),
        'all': read_requirements('mminstall') + read_requirements('optional')
        + read_requirements('tests'),
    },
    cmdclass={'build_py': BuildPyWithMim},
    zip_safe=False,
)
