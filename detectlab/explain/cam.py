"""Class-activation heatmaps for single-logit detectors.

One base class holds the shared machinery (forward/backward hooks on a target layer,
upsampling, normalisation); each method overrides only how channel weights are made from
activations and gradients, as in pytorch-grad-cam. ViT layers are handled by the target's
``reshape`` (tokens -> grid), so Grad-CAM works for CLIP/DINOv2/ViT backbones too.

Target for one logit (the trap of pytorch-grad-cam issue #428): the map must explain the
*decision*. For an image called fake that is d(logit)/dA; for an image called real it is
d(-logit)/dA — using the raw logit there would show the (weak) evidence for "fake" instead.

Grad-CAM: Selvaraju et al. 2017, eq. (1)-(2). Grad-CAM++: Chattopadhay et al. 2018, eq. (19).
"""

from __future__ import annotations

import threading
from typing import Literal

import torch
import torch.nn.functional as F

from detectlab.models.base import Detector, HeatmapTarget

Target = Literal["decision", "fake", "real"]


class BaseCAM:
    """Shared hook machinery; subclasses implement ``channel_weights``.

    ``target`` is one ``HeatmapTarget`` or a list (an ensemble's backbones): all are hooked
    and explained from one forward and one backward pass.
    """

    name = "base"

    def __init__(self, detector: Detector, target: HeatmapTarget | list[HeatmapTarget]) -> None:
        self.detector = detector
        self.targets = list(target) if isinstance(target, (list, tuple)) else [target]

    def channel_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` weights from activations and gradients ``[B, C, h, w]``."""
        raise NotImplementedError

    def compute(self, images: torch.Tensor, target: Target = "decision") -> tuple[list[torch.Tensor], torch.Tensor]:
        """One heatmap ``[B, H, W]`` in [0, 1] (input size) per target, and the logits ``[B]``.

        ``target``: "decision" explains each image's own verdict; "fake"/"real" force one class.
        """
        acts: list[torch.Tensor | None] = [None] * len(self.targets)
        # The app shares one cached model between concurrent requests, and every request's
        # hooks fire on every thread's forward pass: keep only this thread's activations,
        # or another request's (graph-less for us) tensors would overwrite them.
        owner = threading.get_ident()

        def hook(k):
            def fwd_hook(_m, _i, out):
                if threading.get_ident() == owner:
                    acts[k] = out[0] if isinstance(out, tuple) else out
            return fwd_hook

        was_training = self.detector.training
        if was_training:
            self.detector.eval()
        handles = [t.module.register_forward_hook(hook(k)) for k, t in enumerate(self.targets)]
        try:
            with torch.enable_grad():
                # the input carries the graph: a frozen backbone has no trainable parameter before
                # the target layer, so without it the activations would have no gradient
                x = images.detach().clone().requires_grad_(True)
                logits = self.detector(x)
                if target == "decision":
                    sign = torch.where(logits.detach() >= 0, 1.0, -1.0)
                else:
                    sign = torch.full_like(logits, 1.0 if target == "fake" else -1.0)
                # gradients only to activations: parameters are not touched
                grads = torch.autograd.grad((logits * sign).sum(), acts)
        finally:
            for h in handles:
                h.remove()
            if was_training:
                self.detector.train(True)
        return [self._map(t, a.detach(), g.detach(), images.shape[-2:]) for t, a, g in zip(self.targets, acts, grads)], \
            logits.detach()

    def _map(self, t: HeatmapTarget, acts: torch.Tensor, grads: torch.Tensor, size) -> torch.Tensor:
        if t.reshape is not None:
            acts, grads = t.reshape(acts), t.reshape(grads)
        cam = F.relu((self.channel_weights(acts, grads)[:, :, None, None] * acts).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]
        flat = cam.flatten(1)
        lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
        return (cam - lo) / (hi - lo).clamp(min=1e-12)

    def __call__(self, images: torch.Tensor, target: Target = "decision") -> tuple[torch.Tensor, torch.Tensor]:
        """The first target's heatmap ``[B, H, W]`` and the logits (pytorch-grad-cam's single-layer form)."""
        maps, logits = self.compute(images, target)
        return maps[0], logits


class GradCAM(BaseCAM):
    """Grad-CAM: channel weights are the spatially averaged gradients."""

    name = "gradcam"

    def channel_weights(self, acts, grads):
        return grads.mean((2, 3))


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++: gradients weighted by second/third-order terms (exponential-output form)."""

    name = "gradcam++"

    def channel_weights(self, acts, grads):
        g2, g3 = grads.pow(2), grads.pow(3)
        denom = 2 * g2 + (acts.sum((2, 3), keepdim=True) * g3)
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        return (alpha * F.relu(grads)).sum((2, 3))


CAM_METHODS: dict[str, type[BaseCAM]] = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}


def heatmaps(detector: Detector, images: torch.Tensor, method: str = "gradcam",
             target: Target = "decision") -> tuple[list[torch.Tensor], torch.Tensor]:
    """One heatmap batch ``[B, H, W]`` per heatmap target of ``detector`` (ensembles: per backbone)."""
    if method not in CAM_METHODS:
        raise ValueError(f"unknown heatmap method {method!r}; choose one of {sorted(CAM_METHODS)}")
    return CAM_METHODS[method](detector, detector.heatmap_targets()).compute(images, target)
