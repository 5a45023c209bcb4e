"""The error of the photo-source pipeline."""

from detectlab.errors import DetectLabError


class SourcesError(DetectLabError):
    """The photo sources cannot be fetched or found (no apt-get/pip, package missing)."""
