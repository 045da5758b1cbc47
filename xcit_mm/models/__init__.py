"""xcit_mm models: importing this module registers them in
:data:`xcit_mm.registry.MODELS` (scope ``xcit_mm``)."""
from .backbones import *  # noqa: F401,F403
from .backbones import CrossFormer, XCiT
from .classifiers import DistillImageClassifier
from .heads import DistillClsHead
from .losses import DistillationLoss
from .necks import *  # noqa: F401,F403
from .necks import XCiTMultiScaleNeck

__all__ = [
    'CrossFormer', 'XCiT', 'XCiTMultiScaleNeck', 'DistillImageClassifier',
    'DistillClsHead',
    'DistillationLoss'
]
