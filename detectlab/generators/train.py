"""Training, saving and loading of the demo generators."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from detectlab.errors import CheckpointError
from detectlab.generators.nets import CONDITION_SIGMA, DenoisingGenerator, build_generator, degrade_condition
from detectlab.models.spectrum import radial_profile
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress


#: How the spectral term compares amplitudes: per ring (``radial``) or per frequency (``full``).
SPECTRAL_LOSSES = ("radial", "full")


@dataclass
class GeneratorTrainConfig:
    """Settings of one generator's training (Adam on random patches of the real crops)."""

    upsampler: str = "transposed-conv"
    style: str = "residual"                 # a key of nets.STYLES
    width: int = 24
    steps: int = 700
    batch_size: int = 16
    patch: int = 64
    lr: float = 2e-3
    spectral_weight: float = 0.5
    spectral_loss: str = "radial"
    pixel_weight: float = 0.2
    lowpass_weight: float = 1.0
    condition_sigma: tuple[float, float] = CONDITION_SIGMA
    seed: int = 0

    def __post_init__(self) -> None:
        if self.spectral_loss not in SPECTRAL_LOSSES:
            raise ValueError(f"spectral_loss must be one of {SPECTRAL_LOSSES}, got {self.spectral_loss!r}")
        self.condition_sigma = (float(self.condition_sigma[0]), float(self.condition_sigma[1]))


#: What a generator file written before these fields existed was trained with (pixel L1 only,
#: conditioning blur sigma 0.8-1.6), so loading it describes it, and re-derives its outputs, truly.
_BEFORE_LOWPASS_LOSS = {"pixel_weight": 1.0, "lowpass_weight": 0.0, "condition_sigma": (0.8, 1.6), "spectral_loss": "full"}


def _log_amplitude(x: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.fft.rfft2(x, norm="ortho").abs() + 1e-4)


def _radial_log_amplitude(x: torch.Tensor) -> torch.Tensor:
    """Azimuthal average of the centred log-amplitude spectrum per channel: ``[B, C, min(H, W) // 2]``."""
    amp = torch.log(torch.fft.fft2(x, norm="ortho").abs() + 1e-4)
    return radial_profile(torch.fft.fftshift(amp, dim=(-2, -1)))


def _spectral_loss(kind: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "radial":
        return F.l1_loss(_radial_log_amplitude(out), _radial_log_amplitude(target))
    return F.l1_loss(_log_amplitude(out), _log_amplitude(target))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1]."""
    mse = F.mse_loss(a, b).item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(1.0 / mse)).item()


def train_generator(
    images: torch.Tensor,
    config: GeneratorTrainConfig,
    progress: Progress = null_progress,
    cancel: CancelToken = NEVER_CANCEL,
) -> tuple[ResidualGenerator, dict]:
    """Train one generator to restore real photos from their degraded copies.

    Loss: ``lowpass_weight`` x L1 between 4x4-averaged images (the content must match) +
    ``pixel_weight`` x L1 in pixels + ``spectral_weight`` x L1 between log-amplitude spectra,
    azimuthally averaged (``spectral_loss="radial"``) or per frequency (``"full"``).
    A full-weight pixel L1 rewards the per-pixel median, i.e. a soft image: the demo's first
    generators (pixel weight 1, spectral 0.1, conditioning blur sigma 0.8-1.6) left every output
    "missing high frequencies" (radial FP(R, S) about -0.3 to -1.4 at the highest frequencies),
    and detectors learnt that any smooth photo is fake. Matching content at low resolution and
    the radial amplitude profile (how much energy each frequency band holds) leaves the detail
    to the up-samplers, so their trace, not blur, is what marks an output. The radial form
    matters: a per-frequency amplitude loss also flattens the up-samplers' grid peaks, leaving
    fakes with almost no trace at all (a frozen-MobileNet probe fell from 0.90 to 0.70 test
    accuracy on such a demo), unlike real GAN and diffusion decoders.

    A denoiser (style ``denoiser``) learns one step: the clean image from the target noised at one of its
    sampling levels (drawn per image), given the condition.

    Args:
        images: uint8 or float tensor ``[N, 3, H, W]`` of real photos.
    Returns:
        the trained generator (eval mode) and a summary with loss and PSNR.
    """
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    data = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    n, _, h, w = data.shape
    model = build_generator(config.style, config.upsampler, config.width)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.15)
    start = time.perf_counter()
    losses = []
    desc = f"train generator {config.style}/{config.upsampler}"
    for step in range(config.steps):
        cancel.check()
        idx = torch.randint(0, n, (config.batch_size,), generator=rng)
        top = torch.randint(0, h - config.patch + 1, (1,), generator=rng).item()
        left = torch.randint(0, w - config.patch + 1, (1,), generator=rng).item()
        target = data[idx, :, top : top + config.patch, left : left + config.patch]
        flip = torch.rand(config.batch_size, generator=rng) < 0.5
        target = torch.where(flip[:, None, None, None], target.flip(-1), target)
        condition = degrade_condition(target, rng, config.condition_sigma)
        if isinstance(model, DenoisingGenerator):  # one step: the target noised at a level of sampling's
            sigma = torch.tensor(model.SIGMAS)[torch.randint(0, len(model.SIGMAS), (config.batch_size,), generator=rng)]
            noisy = target + sigma[:, None, None, None] * torch.randn(target.shape, generator=rng)
            out = model.denoise(noisy, sigma, condition)
        else:
            out = model(condition, clamp=False)
        loss = (
            config.lowpass_weight * F.l1_loss(F.avg_pool2d(out, 4), F.avg_pool2d(target, 4))
            + config.pixel_weight * F.l1_loss(out, target)
            + config.spectral_weight * _spectral_loss(config.spectral_loss, out, target)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        progress(step + 1, config.steps, desc)
    model.eval()
    with torch.no_grad():
        probe = data[: min(64, n)]
        probe_rng = torch.Generator().manual_seed(10_000 + config.seed)
        cond = degrade_condition(probe, probe_rng, config.condition_sigma)
        out = model.generate(cond, probe_rng)
    summary = {
        "final_loss": sum(losses[-50:]) / len(losses[-50:]),
        "psnr_output_db": psnr(out, probe),
        "psnr_condition_db": psnr(cond, probe),
        "train_seconds": time.perf_counter() - start,
        "train_images": n,
    }
    return model, summary


def save_generator(model: torch.nn.Module, path: Path, config: GeneratorTrainConfig, summary: dict) -> None:
    """Weights in safetensors; config and training summary in the file's metadata."""
    meta = {"config": json.dumps(asdict(config)), "summary": json.dumps(summary), "kind": "detectlab-generator"}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)


def load_generator(path: Path) -> tuple[torch.nn.Module, dict]:
    """Load a generator saved by ``save_generator`` (no code is executed: safetensors)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("kind") != "detectlab-generator":
            raise CheckpointError(f"{path.name}: not a DetectLab generator file (metadata kind missing)")
        config = GeneratorTrainConfig(**{**_BEFORE_LOWPASS_LOSS, **json.loads(meta["config"])})
        model = build_generator(config.style, config.upsampler, config.width)
        model.load_state_dict(load_file(str(path)))
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises several types for a bad file
        raise CheckpointError(f"{path.name}: cannot load generator weights ({exc})") from exc
    model.eval()
    return model, {"config": asdict(config), "summary": json.loads(meta.get("summary", "{}"))}
