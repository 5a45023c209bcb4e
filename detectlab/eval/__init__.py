"""Evaluation: real/fake metrics overall and per generator, and mean ± std over runs."""

from detectlab.eval.metrics import REAL, BinaryMetrics, best_threshold, binary_metrics, mean_std

__all__ = ["REAL", "BinaryMetrics", "best_threshold", "binary_metrics", "mean_std"]
