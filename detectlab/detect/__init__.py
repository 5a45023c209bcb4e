"""Detection: P(fake) for files and folders with a trained detector (and, later, heatmaps)."""

from detectlab.detect.predict import SPLITS, Prediction, Selection, evaluate_dataset, predict_files, write_csv

__all__ = ["SPLITS", "Prediction", "Selection", "predict_files", "evaluate_dataset", "write_csv"]
