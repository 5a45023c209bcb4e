"""Wall time of each Train-tab preset on the demo, every phase counted, from a cold cache.

    .venv/bin/python bench/bench_presets.py [--only "CPU demo"] [--repeats 1] [--out bench/results/presets.json]
                                            [--write]
    .venv/bin/python bench/bench_presets.py --quick      # a smoke test: 24 images per class, 1 epoch / 4 steps

Each preset runs through the path the Train tab takes: the form as the preset fills it
(``train_tab.apply_preset``), the config it queues (``train_tab.detector_config``), the run queue
(``RunManager.submit``) and a worker process, with a fresh ``DETECTLAB_HOME`` per run, so the
backbone-feature cache starts empty (the files of the demo may still sit in the OS page cache).
The time is the user's: from the click (the run queued) to the run's end. The worker records
the seconds of each phase (check files, decode, extract features, train, validate, evaluate);
the rest is start-up (the worker process importing torch, building the model).

Run it on an idle 2-core machine (``taskset -c 0,1`` on a larger one): it prints the load
average before and after, and ``--write`` (which updates ``detectlab/train/preset_times.json``,
the file the preset labels read) refuses when the 1-minute load average at the start was above 0.5 or with
``--quick``/``--limit`` (``--force`` overrides the load check).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import announce_device, write_results  # noqa: E402

from detectlab.config import set_offline_env  # noqa: E402

set_offline_env()

PHASES = ("check files", "decode", "extract features", "train", "validate", "evaluate")


def _subset(demo: Path, root: Path, per_class: int) -> Path:
    """The first ``per_class`` images of each of the demo's folders, copied into ``root``."""
    for folder in sorted(p for p in demo.iterdir() if p.is_dir()):
        (root / folder.name).mkdir(parents=True)
        for f in sorted(folder.glob("*.png"))[:per_class]:
            shutil.copy(f, root / folder.name / f.name)
    return root


def run_preset(preset: str, demo: Path, limit: int | None, quick: bool, timeout: float) -> dict:
    """One run of ``preset`` from a cold cache (a fresh DetectLab home), as the Train tab launches it."""
    home = Path(tempfile.mkdtemp(prefix="detectlab-bench-presets-"))
    os.environ["DETECTLAB_HOME"] = str(home)  # the worker inherits it: its feature cache starts empty
    from detectlab import catalog
    from detectlab.runs import RunManager
    from detectlab.ui import train_tab

    form = dict(zip(train_tab._PRESET_OUTPUTS, train_tab.apply_preset(preset)))
    folder = ""
    if limit:
        from detectlab import config

        folder = str(_subset(demo, config.datasets_dir() / "bench-subset", limit))
    epochs, iterations = form["epochs"], form["iterations"]
    if quick:
        epochs, iterations = 1, (4 if iterations else 0)
    cfg = train_tab.detector_config(
        preset, catalog.DEMO_LABEL, folder, [], form["arch"], form["input_size"], epochs, iterations, form["lr"],
        form["wd"], form["batch"], form["weighted"], form["hflip"], form["augment"], form["aug_p"], form["aug_kinds"],
        form["blur_max"], form["jpeg_min"], form["scale_min"], form["patch_min"], form["adv_eps"], 1, 0,
        "bench", form["init_from"])
    manager = RunManager(home, poll_seconds=0.2)
    load_before = os.getloadavg()
    try:
        record = manager.submit(cfg, name="bench")
        done = manager.store.wait_for(record.id, lambda r: r.status in ("finished", "cancelled", "failed"), timeout)
    finally:
        manager.close()
        shutil.rmtree(home, ignore_errors=True)
    phases = done.result.get("phase_seconds") or {}
    wall = done.finished - done.created
    return {"preset": preset, "status": done.status, "error": done.error, "seconds": round(wall, 1),
            "phases": phases, "startup": round(wall - sum(phases.values()), 1),
            "test_accuracy": (done.result.get("test") or {}).get("accuracy"),
            "images": {"limit_per_class": limit}, "epochs": epochs, "iterations": iterations or None,
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()]}


def _fmt(seconds) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def print_table(rows: list[dict]) -> None:
    head = f"{'preset':58s} {'status':9s} {'total':>9s} {'start-up':>9s} " + " ".join(f"{p:>16s}" for p in PHASES)
    print(head)
    for r in rows:
        print(f"{r['preset'][:58]:58s} {r['status']:9s} {_fmt(r['seconds']):>9s} {_fmt(r['startup']):>9s} "
              + " ".join(f"{_fmt(r['phases'].get(p)):>16s}" for p in PHASES)
              + f"   test acc {r['test_accuracy']}" + (f"   ({r['error']})" if r["error"] else ""))


def write_times(rows: list[dict]) -> Path:
    """Record each preset's median time in ``detectlab/train/preset_times.json`` (the labels' one source)."""
    import statistics

    from detectlab.train.config import PRESET_TIMES_FILE

    data = json.loads(PRESET_TIMES_FILE.read_text(encoding="utf-8")) if PRESET_TIMES_FILE.exists() else {}
    presets = data.setdefault("presets", {})
    for preset in dict.fromkeys(r["preset"] for r in rows):
        mine = [r for r in rows if r["preset"] == preset and r["status"] == "finished"]
        if not mine:
            continue
        best = sorted(mine, key=lambda r: r["seconds"])[len(mine) // 2]
        presets[preset] = {"seconds": round(statistics.median(r["seconds"] for r in mine)), "source": "idle",
                           "phases": best["phases"], "startup": best["startup"], "runs": len(mine),
                           "measured": dt.date.today().isoformat(), "cpus": os.cpu_count(),
                           "load_before": best["load_before"], "command": "bench/bench_presets.py --write"}
    PRESET_TIMES_FILE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return PRESET_TIMES_FILE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", help="a preset's name or a unique start of it (repeatable)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per preset (each from a cold cache)")
    ap.add_argument("--limit", type=int, default=None, help="images per demo folder (a smoke test, not a timing)")
    ap.add_argument("--quick", action="store_true", help="smoke test: --limit 24 (unless given), 1 epoch or 4 steps")
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds one run may take")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    ap.add_argument("--write", action="store_true", help="update detectlab/train/preset_times.json (idle machine)")
    ap.add_argument("--force", action="store_true", help="--write even if the load average says the machine is busy")
    args = ap.parse_args()
    announce_device()
    if args.quick and args.limit is None:
        args.limit = 24
    from detectlab.demo.build import ensure_demo
    from detectlab.train.config import PRESETS, preset_fields  # noqa: F401 - preset_fields checks --only

    demo = ensure_demo()
    names = list(PRESETS)
    if args.only:
        names = [next(k for k in PRESETS if k == o or k.startswith(o)) for o in args.only]
    load_at_start = os.getloadavg()[0]
    print(f"{len(names)} preset(s) x {args.repeats}, {os.cpu_count()} CPUs visible, load average "
          f"{load_at_start:.2f}" + (f"; smoke test: {args.limit} images per folder" if args.limit else ""))
    busy = load_at_start > 0.5  # later runs see the previous run's own load
    if args.write and (args.limit or args.quick):
        print("not written: a --limit/--quick run is a smoke test, not the preset's time")
    elif args.write and busy and not args.force:
        print("not written: the machine was busy (1-minute load average > 0.5); --force to write anyway")
    write = args.write and not (args.limit or args.quick) and (not busy or args.force)
    rows = []
    for name in names:
        mine = []
        for _ in range(args.repeats):
            row = run_preset(name, demo, args.limit, args.quick, args.timeout)
            mine.append(row)
            print(f"  {name}: {row['status']} in {_fmt(row['seconds'])} "
                  + ", ".join(f"{k} {_fmt(v)}" for k, v in row["phases"].items())
                  + f" (load {row['load_before'][0]:.2f} -> {row['load_after'][0]:.2f})", flush=True)
        rows += mine
        write_results(args.out, {"rows": rows})
        if write:  # preset by preset, so an interrupted bench keeps the presets it finished
            print(f"  wrote {write_times(mine)}", flush=True)
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
