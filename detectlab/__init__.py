"""DetectLab: synthetic image detection, localization, fingerprints and robustness."""

__version__ = "0.1.0"
