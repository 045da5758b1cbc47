"""Install xcit_mm: ``pip install -e .`` (see tools/install.sh for the
whole tested stack, including mmcv with its compiled ops)."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


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


setup(
    name='xcit_mm',
    version=read_version(),
    description='XCiT (Cross-Covariance Image Transformers) for mmengine, '
    'mmpretrain, mmdet and mmsegmentation',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['xcit_mm', 'xcit_mm.*']),
    include_package_data=True,
    python_requires='>=3.9',
    install_requires=read_requirements('runtime'),
    extras_require={
        'mim': read_requirements('mminstall'),
        'optional': read_requirements('optional'),
        'tests': read_requirements('tests'),
        'all': read_requirements('mminstall') + read_requirements('optional')
        + read_requirements('tests'),
    },
    zip_safe=False,
)
