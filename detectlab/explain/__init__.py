"""Why a detector decided: class-activation heatmaps and overlays."""

from detectlab.explain.cam import CAM_METHODS, BaseCAM, GradCAM, GradCAMPlusPlus, heatmaps
from detectlab.explain.overlay import colour_bar, grid_image, overlay

__all__ = ["CAM_METHODS", "BaseCAM", "GradCAM", "GradCAMPlusPlus", "colour_bar", "grid_image", "heatmaps", "overlay"]
