"""Training and prediction speed, each against the obvious alternative measured in the same run.

    .venv/bin/python bench/bench_training.py [--steps 40] [--out bench/results/training.json]

1. Training images/s: ``detectlab.train.train`` against a plain hand-written PyTorch loop
   (same model, data in memory, batch size, optimiser, BCE loss; no sampling, flip,
   validation). Target: DetectLab's overhead <= 10 %.
2. Prediction ms/image (decode + resize + forward + calibration and OOD distance) for each
   shipped checkpoint, against decoding and resizing alone; 3 interleaved rounds, min and median
   (``--predict-only`` runs just this).
3. Linear-probe epoch: head on cached backbone features against re-extracting the features
   every epoch. Target: >= 20x faster.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import announce_device, write_results  # noqa: E402

from detectlab.config import set_offline_env  # noqa: E402

set_offline_env()

from detectlab.demo.build import ensure_demo  # noqa: E402
from detectlab.models import create_detector  # noqa: E402
from detectlab.train import TrainConfig  # noqa: E402
from detectlab.train.engine import _run_once, prepare_data  # noqa: E402


def plain_loop(images: torch.Tensor, labels: torch.Tensor, arch: str, steps: int, batch: int, size: int) -> float:
    """The obvious alternative: a bare PyTorch loop; returns images/s of its steps."""
    torch.manual_seed(0)
    model = create_detector(arch, input_size=size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=g)
        x = images[idx].float() / 255.0
        loss = F.binary_cross_entropy_with_logits(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def bench_train(args, data: Path) -> dict:
    cfg = TrainConfig(data=str(data), arch=args.arch, iterations=args.steps, batch_size=args.batch, lr=1e-3,
                      out_dir=str(Path(args.tmp) / "runs"), input_size=128, threads=torch.get_num_threads())
    ds, parts, images = prepare_data(cfg)
    labels = torch.tensor([s.label for s in parts["train"]], dtype=torch.float32)
    # warm-up both paths once (allocator, thread pools)
    plain_loop(images["train"], labels, args.arch, 3, args.batch, 128)
    plain = plain_loop(images["train"], labels, args.arch, args.steps, args.batch, 128)
    run = _run_once(cfg, ds, parts, images, 0, Path(args.tmp) / "runs" / "bench", lambda *a, **k: None,
                    __import__("detectlab.progress", fromlist=["NEVER_CANCEL"]).NEVER_CANCEL, None)
    ours = run.images_per_second
    return {"arch": args.arch, "steps": args.steps, "batch": args.batch, "plain_img_s": round(plain, 1),
            "detectlab_img_s": round(ours, 1), "overhead_pct": round(100 * (plain / ours - 1), 1)}


def bench_predict(data: Path, n: int = 64, repeats: int = 3) -> dict:
    """ms/image of ``predict_files`` with each shipped checkpoint and its trust file (calibrated
    P(fake) + the "unlike the training data" distance: what the CLI and the app pay), against
    the floor of decoding and resizing the same files alone. Rounds interleave every side."""
    import statistics

    from detectlab.catalog import shipped_checkpoints
    from detectlab.data import discover, load_tensor
    from detectlab.detect import predict_files
    from detectlab.detect.trust import load_trust
    from detectlab.models.checkpoint import load_checkpoint

    files = [s.path for s in discover(data).samples][:n]
    sides = {"decode + resize only": None}
    for name, path in shipped_checkpoints().items():
        det, _ = load_checkpoint(path)
        sides[name] = (det, load_trust(path))
        predict_files(det, files[:8], trust=sides[name][1])  # warm-up
    times: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(repeats):
        for name, side in sides.items():
            start = time.perf_counter()
            if side is None:
                for f in files:
                    load_tensor(f, 128)
            else:
                predict_files(side[0], files, trust=side[1])
            times[name].append(1000 * (time.perf_counter() - start) / len(files))
    floor = statistics.median(times["decode + resize only"])
    return {name: {"min_ms": round(min(t), 2), "median_ms": round(statistics.median(t), 2),
                   "x_decode": round(statistics.median(t) / floor, 2)} for name, t in times.items()}


def bench_probe(args, data: Path) -> dict:
    from detectlab.train.engine import cached_features

    cfg = TrainConfig(data=str(data), arch="frozen:mobilenet_v2", input_size=128)
    ds, parts, images = prepare_data(cfg)
    det = create_detector("frozen:mobilenet_v2", input_size=128)
    train_x, samples = images["train"], parts["train"]
    y = torch.tensor([s.label for s in samples], dtype=torch.float32)
    opt = torch.optim.Adam(det.head.parameters(), lr=1e-3)

    def epoch(feature_fn):
        start = time.perf_counter()
        for lo in range(0, len(samples), 64):
            f = feature_fn(lo)
            loss = F.binary_cross_entropy_with_logits(det.forward_head(f), y[lo : lo + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    t0 = time.perf_counter()
    feats = cached_features(det, samples, train_x)  # first call extracts (or reads the cache)
    fill = time.perf_counter() - t0

    def reextract(lo):
        with torch.no_grad():
            return det.backbone_features(train_x[lo : lo + 64].float() / 255.0)

    cached = min(epoch(lambda lo: feats[lo : lo + 64]) for _ in range(3))
    fresh = epoch(reextract)
    return {"train_images": len(samples), "cache_fill_s": round(fill, 2), "epoch_cached_s": round(cached, 4),
            "epoch_reextract_s": round(fresh, 2), "speedup": round(fresh / cached, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tmp", default="/tmp/detectlab-bench")
    ap.add_argument("--out", default=None)
    ap.add_argument("--predict-only", action="store_true", help="only the prediction timings (item 2)")
    args = ap.parse_args()
    announce_device()
    torch.set_num_threads(2)
    data = ensure_demo()
    results = {"threads": torch.get_num_threads()}
    if args.predict_only:
        results["predict_ms_per_image"] = bench_predict(data)
        for name, r in results["predict_ms_per_image"].items():
            print(f"predict {name}: min {r['min_ms']} / median {r['median_ms']} ms/image ({r['x_decode']}x decoding alone)")
        write_results(args.out, results)
        return
    results["train"] = bench_train(args, data)
    print(f"train {args.arch}: plain loop {results['train']['plain_img_s']} img/s, DetectLab "
          f"{results['train']['detectlab_img_s']} img/s -> overhead {results['train']['overhead_pct']} %")
    results["probe"] = bench_probe(args, data)
    p = results["probe"]
    print(f"linear probe epoch ({p['train_images']} images): cached {p['epoch_cached_s']} s vs re-extract "
          f"{p['epoch_reextract_s']} s -> {p['speedup']}x")
    results["predict_ms_per_image"] = bench_predict(data)
    for name, r in results["predict_ms_per_image"].items():
        print(f"predict {name}: min {r['min_ms']} / median {r['median_ms']} ms/image ({r['x_decode']}x decoding "
              "alone; decode + resize + forward + calibration and OOD distance, batch 32)")
    write_results(args.out, results)


if __name__ == "__main__":
    main()
