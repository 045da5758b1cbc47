"""Evaluation of frozen features (DINO's weighted k-NN)."""
from .knn import (
    DEFAULT_KS,
    KNNResult,
    evaluate_knn,
    extract_features,
    weighted_knn,
)

__all__ = ['DEFAULT_KS', 'KNNResult', 'evaluate_knn', 'extract_features',
           'weighted_knn']
