"""How much to trust one verdict: calibrated P(fake) and an "unlike the training data" flag.

Calibration is temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural
Networks", eq. 9 for one logit: p = sigmoid(z / T)), with T fitted by minimising the
negative log-likelihood on the validation split. T > 0 never changes a decision at the 0.5
threshold; it only makes the probability say how often the detector is right.

The out-of-distribution flag is a Mahalanobis distance on the detector's penultimate
features (Lee et al. 2018, "A Simple Unified Framework for Detecting Out-of-Distribution
Samples", eq. 2: class-conditional means, one shared covariance), after a PCA to at most
``MAX_DIMS`` dimensions so the stored statistics stay small for wide (ensemble) features,
with Ledoit-Wolf shrinkage for a well-conditioned covariance. An image is "unlike the
training data" when its distance to the nearer class exceeds the 99th percentile of the
validation images' distances.

Both are fitted once per checkpoint (``fit_trust``) and stored beside it in
``<checkpoint>.trust.safetensors``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from detectlab.errors import DetectLabError
from detectlab.models import Detector
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

MAX_DIMS = 64
OOD_PERCENTILE = 99.0
SUFFIX = ".trust.safetensors"


# -- calibration ---------------------------------------------------------------------------
def expected_calibration_error(p_fake: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of P(fake) against 0/1 labels: the confidence-weighted gap over equal-width bins (Guo et al. eq. 3).

    Confidence is the probability of the predicted class, so a binary detector is binned on
    max(p, 1 - p) in [0.5, 1].
    """
    p = np.asarray(p_fake, float)
    y = np.asarray(labels, float)
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"need equally many probabilities and labels, got {p.shape} and {y.shape}")
    pred = (p > 0.5).astype(float)
    conf = np.where(pred == 1, p, 1 - p)
    correct = (pred == y).astype(float)
    edges = np.linspace(0.5, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi) if lo > 0.5 else (conf >= lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(ece)


def _nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    z = logits / t
    # log(1 + exp(-|z|)) form: stable for large logits
    return float(np.mean(np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z)))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises the NLL of sigmoid(logit / T) (bounded search over log T in [-4, 4])."""
    from scipy.optimize import minimize_scalar

    z, y = np.asarray(logits, float), np.asarray(labels, float)
    if len(np.unique(y)) < 2:
        raise DetectLabError("temperature scaling needs validation images of both classes")
    res = minimize_scalar(lambda s: _nll(z, y, math.exp(s)), bounds=(-4.0, 4.0), method="bounded")
    return float(math.exp(res.x))


@dataclass
class Calibration:
    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    n: int

    def apply(self, logit: float | np.ndarray) -> float | np.ndarray:
        """Calibrated P(fake) of a raw logit."""
        return 1 / (1 + np.exp(-np.asarray(logit, float) / self.temperature))


def calibrate(logits: np.ndarray, labels: np.ndarray) -> Calibration:
    z, y = np.asarray(logits, float), np.asarray(labels, float)
    t = fit_temperature(z, y)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    return Calibration(t, expected_calibration_error(sig(z), y), expected_calibration_error(sig(z / t), y),
                       _nll(z, y, 1.0), _nll(z, y, t), len(z))


# -- feature density ---------------------------------------------------------------------------
@dataclass
class FeatureDensity:
    """PCA-projected class means and a shared precision matrix (Mahalanobis, Lee et al. 2018)."""

    center: torch.Tensor       # [D]
    basis: torch.Tensor        # [D, k]
    means: torch.Tensor        # [2, k] real, fake
    precision: torch.Tensor    # [k, k]
    threshold: float = float("inf")

    @classmethod
    def fit(cls, features: torch.Tensor, labels: torch.Tensor, max_dims: int = MAX_DIMS) -> "FeatureDensity":
        from sklearn.covariance import LedoitWolf

        f = features.double()
        y = labels.long()
        if set(y.tolist()) != {0, 1}:
            raise DetectLabError("the feature density needs training images of both classes")
        center = f.mean(0)
        k = int(min(max_dims, f.shape[1], f.shape[0] - 2))
        _, _, vh = torch.linalg.svd(f - center, full_matrices=False)
        basis = vh[:k].T
        proj = (f - center) @ basis
        means = torch.stack([proj[y == c].mean(0) for c in (0, 1)])
        resid = proj - means[y]
        precision = torch.from_numpy(LedoitWolf(assume_centered=True).fit(resid.numpy()).precision_)
        return cls(center.float(), basis.float(), means.float(), precision.float())

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance ``[N]`` to the nearer class mean."""
        proj = (features.float() - self.center) @ self.basis
        d = proj[:, None, :] - self.means[None]                       # [N, 2, k]
        m = torch.einsum("nck,kl,ncl->nc", d, self.precision, d).clamp(min=0).sqrt()
        return m.min(1).values

    def set_threshold(self, val_features: torch.Tensor, percentile: float = OOD_PERCENTILE) -> float:
        self.threshold = float(np.percentile(self.distance(val_features).numpy(), percentile))
        return self.threshold


# -- fitting on a data set and storing beside the checkpoint ------------------------------------
@torch.no_grad()
def features_and_logits(detector: Detector, images: torch.Tensor, batch_size: int = 64
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``[N, D]`` and logits ``[N]`` from one forward pass."""
    detector.eval()
    feats, logits = [], []
    for k in range(0, len(images), batch_size):
        f = detector.features(images[k:k + batch_size])
        feats.append(f.float())
        logits.append(detector.forward_head(f).float().reshape(-1))
    return torch.cat(feats), torch.cat(logits)


@dataclass
class Trust:
    calibration: Calibration
    density: FeatureDensity

    def assess(self, features: torch.Tensor, logits: torch.Tensor) -> list["Assessment"]:
        dist = self.density.distance(features)
        p = self.calibration.apply(logits.numpy())
        return [Assessment(float(pi), float(di), self.density.threshold, bool(di > self.density.threshold))
                for pi, di in zip(np.atleast_1d(p), dist.tolist())]

    def save(self, path: str | Path, checkpoint_sha256: str = "") -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        d = self.density
        meta = {"calibration": asdict(self.calibration), "ood_threshold": d.threshold,
                "checkpoint_sha256": checkpoint_sha256,
                "ood_percentile": OOD_PERCENTILE, "method": "temperature scaling; Mahalanobis on PCA features"}
        tmp = path.with_name(path.name + ".tmp")
        save_file({"center": d.center.contiguous(), "basis": d.basis.contiguous(), "means": d.means.contiguous(),
                   "precision": d.precision.contiguous()}, str(tmp), metadata={"detectlab-trust": json.dumps(meta)})
        tmp.replace(path)
        return path

    @staticmethod
    def read_meta(path: str | Path) -> dict:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["detectlab-trust"])

    @classmethod
    def load(cls, path: str | Path) -> "Trust":
        from safetensors import safe_open

        meta = cls.read_meta(path)
        with safe_open(str(path), framework="pt") as f:
            t = {k: f.get_tensor(k) for k in ("center", "basis", "means", "precision")}
        return cls(Calibration(**meta["calibration"]), FeatureDensity(**t, threshold=float(meta["ood_threshold"])))


@dataclass
class Assessment:
    p_calibrated: float
    ood_distance: float
    ood_threshold: float
    unlike_training: bool

    def describe(self) -> str:
        if self.unlike_training:
            return (f"unlike the training data (feature distance {self.ood_distance:.1f} > {self.ood_threshold:.1f}, "
                    "the validation 99th percentile): treat this verdict with caution")
        return f"within the training data's range (feature distance {self.ood_distance:.1f} ≤ {self.ood_threshold:.1f})"


def trust_path(checkpoint: str | Path) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + SUFFIX)


def file_sha256(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def save_trust(trust: Trust, checkpoint: str | Path) -> Path:
    """Store ``trust`` beside ``checkpoint``, tied to that file's exact bytes."""
    return trust.save(trust_path(checkpoint), file_sha256(checkpoint))


def load_trust(checkpoint: str | Path) -> Trust | None:
    """The trust statistics stored beside ``checkpoint``; None when none were fitted, or when they were
    fitted on another version of the file (a retrained checkpoint must be calibrated again)."""
    path = trust_path(checkpoint)
    if not path.exists():
        return None
    if Trust.read_meta(path).get("checkpoint_sha256") != file_sha256(checkpoint):
        return None
    return Trust.load(path)


def trained_generators(meta: dict) -> list[str] | None:
    """The generators a checkpoint's fake class was trained on (its metadata's ``data``), or None when not recorded."""
    gens = (meta.get("data") or {}).get("generators")
    return list(gens) if gens else None


def fit_trust(detector: Detector, root: str | Path, split_seed: int = 0, max_train: int = 1200,
              progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
              generators: list[str] | None = None) -> Trust:
    """Fit calibration on the validation split and the feature density on the training split of ``root``.

    ``generators``: the fakes to use (the detector's own training generators, ``trained_generators``), so that a
    design it never trained on stays outside the "like the training data" range; None, or none of them in
    ``root``: every generator of ``root``.
    """
    from detectlab.data import DetectionDataset, discover, load_tensor, split

    ds = discover(root)
    if not isinstance(ds, DetectionDataset):
        raise DetectLabError(f"{root}: calibration needs a real/fake data set")
    samples = ds.samples
    if generators and set(generators) & set(ds.generators):
        keep = set(generators)
        samples = [s for s in samples if s.label == 0 or s.generator in keep]
    parts = split(samples, seed=split_seed)
    train = parts["train"]
    if len(train) > max_train:
        rng = np.random.default_rng(split_seed)
        train = [train[i] for i in sorted(rng.choice(len(train), max_train, replace=False))]
    size = detector.preprocess.input_size
    out = {}
    for name, samples in (("val", parts["val"]), ("train", train)):
        imgs = []
        for i, s in enumerate(samples):
            cancel.check()
            imgs.append(load_tensor(s.path, size))
            progress(i + 1, len(samples), f"decode {name} split")
        feats, logits = features_and_logits(detector, torch.stack(imgs))
        out[name] = (feats, logits, torch.tensor([s.label for s in samples]))
    vf, vz, vy = out["val"]
    tf, _, ty = out["train"]
    density = FeatureDensity.fit(tf, ty)
    density.set_threshold(vf)
    return Trust(calibrate(vz.numpy(), vy.numpy()), density)
