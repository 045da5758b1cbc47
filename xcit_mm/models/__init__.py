"""xcit_mm models: importing this module registers them in
:data:`xcit_mm.registry.MODELS` (scope ``xcit_mm``)."""
from .backbones import *  # noqa: F401,F403
from .backbones import CrossFormer, XCiT
from .classifiers import DistillImageClassifier
from .heads import DINOHead, DistillClsHead
from .losses import DINOLoss, DistillationLoss
from .necks import *  # noqa: F401,F403
from .necks import XCiTMultiScaleNeck
from .selfsup import DINO

__all__ = [
    'CrossFormer', 'XCiT', 'XCiTMultiScaleNeck', 'DistillImageClassifier',
    'DistillClsHead', 'DistillationLoss', 'DINO', 'DINOHead', 'DINOLoss'
]
