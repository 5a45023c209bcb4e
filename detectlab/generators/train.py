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
from detectlab.generators.nets import ResidualGenerator, degrade_condition
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress


@dataclass
class GeneratorTrainConfig:
    """Settings of one generator's training (Adam on random patches of the real crops)."""

    upsampler: str = "transposed-conv"
    width: int = 24
    steps: int = 700
    batch_size: int = 16
    patch: int = 64
    lr: float = 2e-3
    spectral_weight: float = 0.1
    seed: int = 0


def _log_amplitude(x: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.fft.rfft2(x, norm="ortho").abs() + 1e-4)


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

    Loss: L1 in pixels plus ``spectral_weight`` x L1 between log-amplitude spectra, which
    pushes the outputs towards photographic high-frequency content (without it they stay
    blurry and every generator's trace is the same "missing high frequencies").

    Args:
        images: uint8 or float tensor ``[N, 3, H, W]`` of real photos.
    Returns:
        the trained generator (eval mode) and a summary with loss and PSNR.
    """
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    data = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    n, _, h, w = data.shape
    model = ResidualGenerator(config.upsampler, config.width)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.15)
    start = time.perf_counter()
    losses = []
    desc = f"train generator {config.upsampler}"
    for step in range(config.steps):
        cancel.check()
        idx = torch.randint(0, n, (config.batch_size,), generator=rng)
        top = torch.randint(0, h - config.patch + 1, (1,), generator=rng).item()
        left = torch.randint(0, w - config.patch + 1, (1,), generator=rng).item()
        target = data[idx, :, top : top + config.patch, left : left + config.patch]
        flip = torch.rand(config.batch_size, generator=rng) < 0.5
        target = torch.where(flip[:, None, None, None], target.flip(-1), target)
        out = model(degrade_condition(target, rng), clamp=False)
        loss = F.l1_loss(out, target) + config.spectral_weight * F.l1_loss(_log_amplitude(out), _log_amplitude(target))
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
        cond = degrade_condition(probe, torch.Generator().manual_seed(10_000 + config.seed))
        out = model(cond)
    summary = {
        "final_loss": sum(losses[-50:]) / len(losses[-50:]),
        "psnr_output_db": psnr(out, probe),
        "psnr_condition_db": psnr(cond, probe),
        "train_seconds": time.perf_counter() - start,
        "train_images": n,
    }
    return model, summary


def save_generator(model: ResidualGenerator, path: Path, config: GeneratorTrainConfig, summary: dict) -> None:
    """Weights in safetensors; config and training summary in the file's metadata."""
    meta = {"config": json.dumps(asdict(config)), "summary": json.dumps(summary), "kind": "detectlab-generator"}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)


def load_generator(path: Path) -> tuple[ResidualGenerator, dict]:
    """Load a generator saved by ``save_generator`` (no code is executed: safetensors)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("kind") != "detectlab-generator":
            raise CheckpointError(f"{path.name}: not a DetectLab generator file (metadata kind missing)")
        config = GeneratorTrainConfig(**json.loads(meta["config"]))
        model = ResidualGenerator(config.upsampler, config.width)
        model.load_state_dict(load_file(str(path)))
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises several types for a bad file
        raise CheckpointError(f"{path.name}: cannot load generator weights ({exc})") from exc
    model.eval()
    return model, {"config": asdict(config), "summary": json.loads(meta.get("summary", "{}"))}
