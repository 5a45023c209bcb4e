"""Large folders: discover, re-open, predict and fingerprint time and peak memory at 1k, 10k and 100k images.

    .venv/bin/python bench/bench_scale.py [--sizes 1000,10000,100000] [--repeats 3] [--resnet-max 10000]
                                          [--tmp DIR] [--out bench/results/scale.json]

For each size N a ``real/`` + 7 generator folders set of N distinct files is written under ``--tmp`` (default:
the system's temporary folder; the free space is checked first, about 30 KB a file) from the demo's images:
each file is a demo PNG with its index appended after the IEND chunk (decoders stop at IEND, so the pixels are
the demo's but no two files are equal), and removed afterwards. Every step runs in a fresh process, so its
peak RSS is its own (the main process, and the DataLoader workers' largest, separately):

- discover: first open with an empty DETECTLAB_HOME (listing, no file opened), then re-open (the index);
- predict: ``iter_scores`` over every file as ``detectlab predict --csv`` runs it (predictions streamed to a
  CSV 256 at a time), with spectrum-durrall at every size (cheap: the decoding floor is what it can reach) and
  cnn-resnet18 up to ``--resnet-max`` (its forward pass, ~8 ms an image on this CPU, is 10x the decode: 100k
  images would take ~15 min a repeat and say nothing more about the pipeline);
- floor: the same DataLoader (same workers, batch 32, same decode and resize) with nothing done per batch;
- fingerprint: the mean spectrum of each class folder (``spectral.sets.set_spectrum``, all files);
- sweep: a robustness sweep of every file with spectrum-durrall at blur 0, 1 and 2 (``run_sweep``: each file
  decoded once, degraded and scored at each strength), as ``detectlab robustness`` runs it.

Predict and floor are interleaved, ``--repeats`` times each; min and median are reported. Checks printed at the
end: time linear in N, peak RSS within 10 % from 10k to 100k, predict >= 0.8x the floor's throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results  # noqa: E402

CHEAP, RESNET = "spectrum-durrall", "cnn-resnet18"
SWEEP_LEVELS = "0,1,2"   # blur sigmas of the sweep step: each file decoded once, scored three times


# --------------------------------------------------------------------------- one step, in its own process

def _hwm_mb(pid: str = "self") -> float | None:
    """The high-water mark of a process's own address space (``VmHWM``), MB; None where /proc lacks it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _private_mb(pid: str) -> float:
    """A process's own memory, MB: its private pages (``smaps_rollup``), not the pages it shares with the process
    it was forked from; 0 where /proc lacks it."""
    try:
        return sum(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                   if line.startswith(("Private_Clean:", "Private_Dirty:"))) / 1024
    except (OSError, ValueError, IndexError):
        return 0.0


class WorkerPeaks:
    """This process's children (the DataLoader's decoding workers), polled every 0.1 s: the largest ``VmHWM``
    and the largest private memory.

    A forked worker's RSS counts every page of the main process it was forked from (shared, copy-on-write, not
    extra memory), so its ``VmHWM`` follows the main process's size at the fork; its private pages are what it
    adds. Not ``getrusage(RUSAGE_CHILDREN)``: Linux carries a process's high-water mark across ``exec``, so any
    helper program started on the way (a library lookup) reports the RSS of this process at that moment.
    """

    def __init__(self) -> None:
        import threading

        self.peak = self.private = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            for task in Path("/proc/self/task").glob("*/children"):
                try:
                    pids = task.read_text().split()
                except OSError:
                    continue
                for pid in pids:
                    self.peak = max(self.peak, _hwm_mb(pid) or 0.0)
                    self.private = max(self.private, _private_mb(pid))

    def stop(self) -> tuple[float, float]:
        """(largest VmHWM, largest private memory), MB."""
        self._stop.set()
        self._thread.join()
        return round(self.peak, 1), round(self.private, 1)


def _peak_mb() -> float:
    """This process's own peak RSS, MB: ``VmHWM``, which starts at ``exec``; not ``getrusage``'s ``ru_maxrss``,
    which would be at least the RSS of the parent that started this step (780 MB for the bench's parent)."""
    me = _hwm_mb()
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if me is None else me, 1)


def child(step: str, root: Path, detector: str) -> dict:
    import detectlab  # noqa: F401 - first, as `detectlab predict` does: it sets OMP_WAIT_POLICY before torch loads
    import torch  # noqa: F401 - imported before the clock starts in every step, so no step pays for it alone

    from detectlab.data import discover

    workers = WorkerPeaks()
    if step == "discover":
        t = time.perf_counter()
        ds = discover(root, validate=False)
        seconds, n = time.perf_counter() - t, len(ds)
    elif step in ("predict", "floor"):
        from detectlab.catalog import load_detector
        from detectlab.data.torchdata import fitted_batches
        from detectlab.detect.predict import expand_inputs, iter_scores, write_csv

        loaded = load_detector(detector)
        files = expand_inputs([root])
        # warm-up, off the clock: the first scoring imports trust, tiling and verdict code (~1 s), start-up
        # that a CLI run pays once, not throughput
        list(iter_scores(loaded, files[:4])) if step == "predict" else list(fitted_batches(files[:4], 32, 4, 0))
        t = time.perf_counter()
        n = 0
        if step == "floor":
            for b in fitted_batches(files, loaded.detector.preprocess.input_size, 32):
                n += len(b.positions)
        else:
            out, chunk = Path(os.environ["DETECTLAB_HOME"]) / "scores.csv", []
            for p in iter_scores(loaded, files):
                chunk.append(p)
                if len(chunk) == 256:
                    write_csv(chunk, out, loaded.path.stem, append=True)
                    chunk = []
                n += 1
            if chunk:
                write_csv(chunk, out, loaded.path.stem, append=True)
            out.unlink(missing_ok=True)
        seconds = time.perf_counter() - t
    elif step == "fingerprint":
        from detectlab.spectral.sets import files_by_class, set_spectrum

        t = time.perf_counter()
        n = sum(set_spectrum(name, files).n for name, files in files_by_class(root).items())
        seconds = time.perf_counter() - t
    elif step == "sweep":
        from detectlab.catalog import load_detector
        from detectlab.robustness import SweepSpec, group_detectors, run_sweep, sweep_samples

        loaded = load_detector(detector)
        t = time.perf_counter()
        samples, _ = sweep_samples(root, "all")
        n = run_sweep(group_detectors([loaded]), samples, SweepSpec.make("blur", SWEEP_LEVELS)).n_images
        seconds = time.perf_counter() - t
    else:
        raise SystemExit(f"unknown step {step}")
    hwm, private = workers.stop()
    return {"seconds": round(seconds, 3), "n": n, "rss_mb": _peak_mb(), "workers_rss_mb": hwm,
            "workers_private_mb": private}


def run_step(step: str, root: Path, home: Path, detector: str = "") -> dict:
    env = {**os.environ, "DETECTLAB_HOME": str(home)}
    proc = subprocess.run([sys.executable, __file__, "--child", step, "--root", str(root), "--detector", detector],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"{step} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the folders

def demo_sources() -> dict[str, list[Path]]:
    from detectlab.demo.build import ensure_demo
    from detectlab.spectral.sets import files_by_class

    return files_by_class(ensure_demo())


def build_folder(dest: Path, n: int, sources: dict[str, list[Path]]) -> None:
    """``n`` distinct PNGs: class folders in turn, each file a demo image of that class plus its index after IEND."""
    names = list(sources)
    blobs = {name: [f.read_bytes() for f in files[:400]] for name, files in sources.items()}
    for name in names:
        (dest / name).mkdir(parents=True)
    for i in range(n):
        name = names[i % len(names)]
        pool = blobs[name]
        (dest / name / f"{i:06d}.png").write_bytes(pool[(i // len(names)) % len(pool)] + i.to_bytes(8, "little"))
    time.sleep(2.1)  # past the index's "racy" window: the listing is stored at the first open


def _summary(runs: list[dict]) -> dict:
    secs = [r["seconds"] for r in runs]
    return {"min_s": min(secs), "median_s": statistics.median(secs), "runs_s": secs,
            "rss_mb": max(r["rss_mb"] for r in runs), "workers_rss_mb": max(r["workers_rss_mb"] for r in runs),
            "workers_private_mb": max(r.get("workers_private_mb", 0.0) for r in runs),
            "n": runs[0]["n"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--resnet-max", type=int, default=10000, help="largest size scored with cnn-resnet18 too")
    ap.add_argument("--tmp", default=tempfile.gettempdir(), help="where the folders are written (same disk)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale.json"))
    ap.add_argument("--child")
    ap.add_argument("--root")
    ap.add_argument("--detector", default="")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.root), args.detector)))
        return

    import torch

    from detectlab.data.torchdata import loader_workers

    sizes = [int(s) for s in args.sizes.split(",")]
    free = shutil.disk_usage(args.tmp).free
    need = max(sizes) * 32_000
    if free < 1.5 * need:
        raise SystemExit(f"{args.tmp}: {free / 1e9:.1f} GB free, the {max(sizes):,}-file folder needs about "
                         f"{need / 1e9:.1f} GB; choose another --tmp")
    device = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
              f"CPU (no GPU); DataLoader workers {loader_workers(10**6, 32)}; load average at start "
              f"{os.getloadavg()[0]:.2f}")
    print(f"device: {device}")
    sources = demo_sources()
    results = {"device": device, "repeats": args.repeats, "sizes": {}}
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"detectlab-scale-{n}-", dir=args.tmp))
        try:
            t = time.perf_counter()
            build_folder(work / "set", n, sources)
            print(f"\n{n:,} files written in {time.perf_counter() - t:.1f} s")
            home = work / "home"
            row = {"first_open": run_step("discover", work / "set", home),
                   "reopen": run_step("discover", work / "set", home)}
            for det in [CHEAP] + ([RESNET] if n <= args.resnet_max else []):
                floor, pred = [], []
                for _ in range(args.repeats):  # interleaved: a load change hits both sides alike
                    floor.append(run_step("floor", work / "set", home, det))
                    pred.append(run_step("predict", work / "set", home, det))
                f, p = _summary(floor), _summary(pred)
                row[f"floor[{det}]"], row[f"predict[{det}]"] = f, p
                row[f"predict_vs_floor[{det}]"] = round(f["median_s"] / p["median_s"], 3)
            row["fingerprint"] = _summary([run_step("fingerprint", work / "set", home) for _ in range(args.repeats)])
            row["sweep"] = _summary([run_step("sweep", work / "set", home, CHEAP) for _ in range(args.repeats)])
            row["sweep_vs_floor"] = round(row[f"floor[{CHEAP}]"]["median_s"] / row["sweep"]["median_s"], 3)
            results["sizes"][str(n)] = row
            _print_size(n, row)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    results["checks"] = _checks(results["sizes"])
    print("\nchecks:")
    for k, v in results["checks"].items():
        print(f"  {k}: {v}")
    write_results(args.out, results)
    print(f"results: {args.out}")


def _print_size(n: int, row: dict) -> None:
    fo, ro = row["first_open"], row["reopen"]
    print(f"  discover: first open {fo['seconds']:.2f} s ({fo['rss_mb']:.0f} MB), re-open {ro['seconds']:.2f} s "
          f"({ro['rss_mb']:.0f} MB)")
    for key, v in row.items():
        if key.startswith(("floor[", "predict[", "fingerprint", "sweep")) and isinstance(v, dict):
            print(f"  {key:28s} median {v['median_s']:8.2f} s  min {v['min_s']:8.2f} s  "
                  f"{n / v['median_s']:8.0f} img/s  peak RSS {v['rss_mb']:.0f} MB (workers {v['workers_rss_mb']:.0f} MB, "
                  f"of it their own {v.get('workers_private_mb', 0):.0f} MB)")
        elif key.startswith("predict_vs_floor"):
            print(f"  {key:28s} {v:.2f}x the decode-only floor's throughput (target >= 0.8)")
        elif key == "sweep_vs_floor":
            print(f"  {key:28s} {v:.2f}x the decode-only floor's throughput ({CHEAP}, 3 blur strengths a file)")


def _checks(sizes: dict) -> dict:
    out = {}
    ns = sorted(int(n) for n in sizes)
    for a, b in zip(ns, ns[1:]):
        ra, rb = sizes[str(a)], sizes[str(b)]
        for step in ("first_open", "reopen"):
            per = (rb[step]["seconds"] / b) / max(ra[step]["seconds"] / a, 1e-9)
            out[f"{step} per file {b} vs {a}"] = f"{per:.2f}x ({'linear' if per <= 1.5 else 'NOT linear'})"
        for step in (f"predict[{CHEAP}]", "fingerprint", "sweep"):
            per = (rb[step]["median_s"] / b) / (ra[step]["median_s"] / a)
            out[f"{step} per file {b} vs {a}"] = f"{per:.2f}x ({'linear' if per <= 1.5 else 'NOT linear'})"
            grow = rb[step]["rss_mb"] / ra[step]["rss_mb"] - 1
            if a >= 10000:
                out[f"{step} peak RSS {a} -> {b}"] = f"{grow:+.1%} ({'flat' if abs(grow) <= 0.10 else 'NOT within 10 %'})"
            else:
                out[f"{step} peak RSS {a} -> {b}"] = f"{grow:+.1%}"
    for n, row in sizes.items():
        for key, v in row.items():
            if key.startswith("predict_vs_floor"):
                out[f"{key} at {n}"] = f"{v:.2f}x ({'met' if v >= 0.8 else 'not met'}, target >= 0.8x)"
            elif key == "sweep_vs_floor":   # three degradations and scorings a file: not one scoring's target
                out[f"{key} at {n}"] = f"{v:.2f}x (blur and score at 3 strengths a file, each file decoded once)"
        out[f"first open at {n}"] = f"{row['first_open']['seconds']:.2f} s (target <= 10 s at 100k)"
        out[f"re-open at {n}"] = f"{row['reopen']['seconds']:.2f} s (target <= 1 s at 100k)"
    return out


if __name__ == "__main__":
    main()
