"""Spectral analysis: log-amplitude spectra and generator fingerprints ([Wimmer 2024], eq. 1)."""

from detectlab.spectral.fingerprint import (
    Fingerprint,
    RunningMean,
    fingerprint,
    log_spectrum,
    mean_log_spectrum,
    render_spectrum,
)

__all__ = ["Fingerprint", "RunningMean", "fingerprint", "log_spectrum", "mean_log_spectrum", "render_spectrum"]
