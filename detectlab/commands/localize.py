"""`detectlab localize train|eval|predict`: the localize capability from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``localize`` with its ``train``, ``eval`` and ``predict`` sub-commands."""
    lo = sub.add_parser("localize", help="localize manipulated regions (YOLOv8-seg, U-Net; [Petrželková 2024] §4.5)")
    lsub = lo.add_subparsers(dest="localize_command", required=True)

    tr = lsub.add_parser("train", help="train a localizer on an images/ + masks/ folder")
    tr.add_argument("--arch", default="yolov8n-seg", help="yolov8n-seg, yolov8s-seg or unet")
    tr.add_argument("--data", default=None, help="images/ + masks/ folder (default: the demo's manipulated set)")
    tr.add_argument("--name", default="", help="checkpoint name (default from the architecture)")
    tr.add_argument("--epochs", type=int, default=30)
    tr.add_argument("--imgsz", type=int, default=128)
    tr.add_argument("--batch", type=int, default=16)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--lr", type=float, default=1e-3, help="U-Net learning rate")
    tr.add_argument("--width", type=int, default=16, help="U-Net channels at full resolution")
    tr.add_argument("--threads", type=int, default=0, help="torch threads for YOLO training (0: ultralytics')")
    tr.add_argument("--weights", default="", help="start YOLO from this local ultralytics .pt")
    tr.add_argument("--trust-pt", action="store_true",
                    help="allow loading a .pt from outside DetectLab's folders (it is unpickled: it can run code)")
    tr.add_argument("--out", default="", help="output folder (default: DETECTLAB_HOME/localizers)")
    tr.add_argument("--json", default=None, help="also write the result (metrics, history) to this file")
    tr.set_defaults(func=_cmd_train)

    ev = lsub.add_parser("eval", help="mAP50, pixel metrics and area quartiles on a split")
    ev.add_argument("localizer", help="shipped name (e.g. localizer-yolov8n-seg) or a .pt / .safetensors file")
    ev.add_argument("--data", default=None, help="images/ + masks/ folder (default: the demo's manipulated set)")
    ev.add_argument("--split", choices=["train", "val", "test"], default="test")
    ev.add_argument("--seed", type=int, default=0, help="split seed (the training's)")
    ev.add_argument("--conf", type=float, default=0.25, help="confidence threshold for pixel metrics")
    ev.add_argument("--detector", default=None, help="also the heatmap↔mask IoU of this detector")
    ev.add_argument("--trust-pt", action="store_true", help="allow unpickling a .pt from outside DetectLab")
    ev.add_argument("--json", default=None)
    ev.add_argument("--csv", default=None, help="per-quartile table as CSV")
    ev.set_defaults(func=_cmd_eval)

    pr = lsub.add_parser("predict", help="write predicted mask PNGs and overlays")
    pr.add_argument("localizer")
    pr.add_argument("inputs", nargs="+", help="image files or folders")
    pr.add_argument("--out", required=True, help="output folder: <stem>_mask.png and <stem>_overlay.png")
    pr.add_argument("--conf", type=float, default=0.25)
    pr.add_argument("--trust-pt", action="store_true", help="allow unpickling a .pt from outside DetectLab")
    pr.set_defaults(func=_cmd_predict)


def _load(args):
    from detectlab.catalog import resolve_localizer
    from detectlab.localize.localizer import load_localizer

    return load_localizer(resolve_localizer(args.localizer), allow_pickle=args.trust_pt)


def _cmd_train(args: argparse.Namespace) -> int:
    from detectlab import config
    from detectlab.localize import train_localizer
    from detectlab.progress import TqdmProgress

    cfg = {"arch": args.arch, "data": args.data or str(config.DEMO_INPAINT_DIR), "name": args.name,
           "epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch, "seed": args.seed, "lr": args.lr,
           "width": args.width, "threads": args.threads, "weights": args.weights, "trust_weights": args.trust_pt,
           "out_dir": args.out}
    progress = TqdmProgress()
    result = train_localizer(cfg, progress=progress)
    progress.close()
    _print_metrics(result["metrics"]["test"])
    print(f"checkpoint: {result['checkpoint']}  ({result['train_seconds']:.0f} s training)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def _print_metrics(m: dict, heatmap: dict | None = None) -> None:
    px = m["pixel"]
    head = f"{m['images']} images: pixel precision {px['precision']:.3f} recall {px['recall']:.3f} " \
           f"IoU {px['iou']:.3f} dice {px['dice']:.3f}"
    if "map50" in m:
        head += f"  mAP50 {m['map50']:.3f}  mAP50-95 {m['map50_95']:.3f}"
    print(head)
    from detectlab.localize import quartile_table

    for row in quartile_table(m, heatmap):
        print("  " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))


def _cmd_eval(args: argparse.Namespace) -> int:
    from detectlab import config
    from detectlab.localize import evaluate_set
    from detectlab.progress import TqdmProgress

    localizer = _load(args)
    detector = None
    if args.detector:
        from detectlab.catalog import load_detector

        detector = load_detector(args.detector).detector
    progress = TqdmProgress()
    result = evaluate_set(localizer, args.data or config.DEMO_INPAINT_DIR, split=args.split, seed=args.seed,
                          conf=args.conf, detector=detector, detector_name=args.detector or "", progress=progress)
    progress.close()
    _print_metrics(result.metrics, result.heatmap)
    if result.heatmap is not None:
        print(f"heatmap↔mask IoU of {args.detector}: {result.heatmap['mean_iou']:.3f} over "
              f"{result.heatmap['images']} images")
    if args.json:
        Path(args.json).write_text(json.dumps(result.metrics, indent=1))
    if args.csv:
        result.write_csv(args.csv)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from detectlab.detect.predict import expand_inputs
    from detectlab.errors import DetectLabError
    from detectlab.localize import localize_image
    from detectlab.localize.analyze import write_png

    localizer = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in expand_inputs(args.inputs):
        try:
            result = localize_image(localizer, path, conf=args.conf)
        except DetectLabError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            failed += 1
            continue
        regions = result.shown()
        result.predicted_mask_image().save(out / f"{path.stem}_mask.png")
        write_png(result.overlay(), out / f"{path.stem}_overlay.png")
        confs = ", ".join(f"{r.confidence:.2f}" for r in regions) or "none"
        print(f"{path}: {len(regions)} region(s) (confidence {confs}), "
              f"{result.predicted_area():.1%} of the image")
    return 1 if failed else 0
