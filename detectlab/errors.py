"""Errors DetectLab raises for bad input; their messages are shown to users as they are."""


class DetectLabError(Exception):
    """Base class for user-facing errors: the message must say what and which file."""


class ImageDecodeError(DetectLabError):
    """An image file could not be decoded (corrupt, truncated, empty, not an image, too big)."""


class DatasetError(DetectLabError):
    """A folder is not a data set in any accepted layout, or is outside the data roots."""


class CheckpointError(DetectLabError):
    """A checkpoint cannot be loaded safely or lacks its metadata."""
