"""`detectlab attack`: confusion rate against eps, transfer matrix, mirror models, cross-sample and blur defence
([Petrželková 2024] §4.4); `detectlab mirror`: the whole mirror-model experiment (Table 4.5), training included."""

from __future__ import annotations

import argparse

from detectlab.commands import add_detectors_and_split, data_root


def _pct(v) -> str:
    return "  n/a" if v is None else f"{100 * v:5.1f}"


def _cmd_attack(args: argparse.Namespace) -> int:
    from detectlab import catalog
    from detectlab.attacks import blur_defence, cross_sample, paper, parse_eps_list, transfer
    from detectlab.errors import DetectLabError
    from detectlab.progress import TqdmProgress

    args.eps = parse_eps_list(args.eps)
    progress = TqdmProgress(disable=args.quiet)
    dets = {d.short_name: d for d in map(catalog.load_detector, args.detectors)}
    if args.mirror and len(dets) != 2:
        raise DetectLabError(f"--mirror takes two different detectors (the models trained with --part 1/2 and 2/2), "
                             f"got {len(dets)}")
    if args.mirror and (args.transfer or args.cross_sample or args.defence_blur is not None):
        raise DetectLabError("--mirror runs on its own: leave out --transfer, --cross-sample and --defence-blur")
    attackers = {n: d.detector for n, d in dets.items() if d.differentiable}
    for n, d in dets.items():
        if not d.differentiable:
            print(f"{n}: gradient attacks do not apply to a {d.kind} baseline; it only judges residuals crafted on "
                  "the other detectors")
    if not attackers:
        raise DetectLabError("no detector to craft the attack on: gradient attacks do not apply to "
                             + ", ".join(dets))
    images = _images(args, data_root(args), next(iter(dets.values())).input_size, args.split_seed, progress)
    rows: list[dict] = []
    if args.mirror:
        return _mirror(args, dets, images, progress)
    res = transfer(attackers, {n: d.detector for n, d in dets.items()}, images, args.eps, args.method,
                   pairs="all" if args.transfer else "diagonal",
                   thresholds={n: d.threshold for n, d in dets.items()}, progress=progress)
    progress.close()
    rows += [{"experiment": "transfer" if args.transfer else "confusion", **r} for r in res.rows()]
    print("\nconfusion rate [%] (white box: each detector attacked on itself)")
    print(f"{'detector':40s} " + " ".join(f"{'eps ' + format(e, 'g'):>10s}" for e in res.eps))
    for a in res.attackers:
        print(f"{a[:40]:40s} " + " ".join(f"{_pct(r):>10s}" for _, r in res.curve(a)))
    if args.transfer:
        for e in res.eps:
            print(f"\ntransfer matrix at eps {e:g} [%]: rows crafted on, columns judged by")
            print(f"{'':28s}" + "".join(f"{j[:14]:>15s}" for j in res.judges))
            for a, row in zip(res.attackers, res.matrix(e)):
                print(f"{a[:28]:28s}" + "".join(f"{_pct(v):>15s}" for v in row))
    lines = (paper.white_box_findings(res) + paper.class_findings(res)
             + (paper.transfer_findings(res) if args.transfer else []))
    if args.cross_sample:
        for n, model in attackers.items():
            cs = cross_sample(model, images, args.eps, args.method, name=n, n_sources=args.sources,
                              threshold=dets[n].threshold, progress=progress)
            progress.close()
            rows += [{"experiment": "cross-sample", **r} for r in cs.rows()]
            lines += paper.cross_sample_findings(cs)
    if args.defence_blur is not None:
        for n, model in attackers.items():
            bd = blur_defence(model, images, args.eps[-1], args.defence_blur, args.method, name=n,
                              threshold=dets[n].threshold, progress=progress)
            progress.close()
            rows += [{"experiment": "blur-defence", **r} for r in bd.rows()]
            lines += paper.blur_findings(bd)
    return _finish(args, lines, rows, images)


def _images(args: argparse.Namespace, root, size: int, split_seed: int, progress):
    """The picked split of ``root`` decoded at ``size``, and a line saying what is attacked how."""
    from detectlab.attacks import load_split

    images = load_split(root, args.split, size, seed=split_seed, limit=args.limit, progress=progress)
    progress.close()
    print(f"{len(images)} images ({images.n_fake} fake) of {root} ({args.split} split); "
          f"{args.method}, eps {', '.join(f'{e:g}' for e in args.eps)}")
    return images


def _finish(args: argparse.Namespace, lines: list[str], rows: list[dict], images) -> int:
    from detectlab.attacks import write_csv

    print()
    for line in lines:
        print(f"- {line}")
    if images.skipped:
        print(f"{len(images.skipped)} unreadable files skipped (first: {images.skipped[0][1]})")
    if args.csv:
        print(f"wrote {write_csv(rows, args.csv)}")
    return 0


def _mirror(args: argparse.Namespace, dets: dict, images, progress) -> int:
    """Table 4.5: the two mirror models, each attacking itself and the other."""
    from detectlab.attacks import mirror, paper

    (a, da), (b, db) = dets.items()
    res = mirror(da.detector, db.detector, images, args.eps, args.method, names=(a, b),
                 thresholds={a: da.threshold, b: db.threshold}, progress=progress)
    progress.close()
    for e in res.eps:
        print(f"\nmirror models at eps {e:g} [%] ([Petrželková 2024] Table 4.5): rows judged by, columns crafted on")
        print(f"{'':28s}" + "".join(f"{n[:14]:>15s}" for n in (a, b)))
        for n, row in zip((a, b), res.table(e)):
            print(f"{n[:28]:28s}" + "".join(f"{_pct(v):>15s}" for v in row))
    return _finish(args, paper.mirror_findings(res) + paper.class_findings(res),
                   [{"experiment": "mirror", **r} for r in res.rows()], images)


#: ``detectlab mirror`` flags that replace the base detector's training settings for both halves
_TRAIN_OVERRIDES = ("epochs", "iterations", "input_size", "batch_size", "lr", "threads", "seed")


def _cmd_mirror(args: argparse.Namespace) -> int:
    """Table 4.5 end to end: train the mirror pair, then let each attack itself and the other."""
    from detectlab import catalog
    from detectlab.attacks import MIRROR_BASE, mirror_configs, parse_eps_list
    from detectlab.progress import TqdmProgress
    from detectlab.train import TrainConfig

    args.eps = parse_eps_list(args.eps)  # before training: a typo here must not cost two trainings
    root = data_root(args)
    base = args.base or MIRROR_BASE
    overrides = {key: getattr(args, key) for key in _TRAIN_OVERRIDES}
    # validated as the run queue does, both before the first one trains
    configs = [(name, TrainConfig.from_dict(cfg).to_dict())
               for name, cfg in mirror_configs(str(root), base, overrides=overrides)]
    ids = []
    for name, cfg in configs:
        print(f"training {name} on part {cfg['train_part']} of {root}'s train split with {base}'s settings",
              flush=True)
        ids.append(_train(cfg))
    dets = {d.short_name: d for d in map(catalog.load_detector, ids)}
    print(f"mirror pair: A = {ids[0]} (part 1/2), B = {ids[1]} (part 2/2)")
    progress = TqdmProgress(disable=args.quiet)
    # the split both halves held out: their own split seed
    images = _images(args, root, next(iter(dets.values())).input_size, configs[0][1]["split_seed"], progress)
    return _mirror(args, dets, images, progress)


def _train(config: dict) -> str:
    """Train ``config`` by running ``detectlab train CONFIG.json`` in a child process; returns the finished run's id.

    A child process, so a mirror half trains exactly as a terminal's run does (it waits its turn in the
    queue the app shares, prints its epochs, leaves the queue or stops its run on Ctrl-C) without this
    command depending on how ``detectlab train`` does it."""
    import json
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from detectlab.errors import DetectLabError
    from detectlab.runs import RunStore
    from detectlab.train.layout import runs_db

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="detectlab-mirror-") as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        sys.stdout.flush()
        sys.stderr.flush()
        proc = subprocess.Popen([sys.executable, "-m", "detectlab", "train", str(path)])
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.wait()  # it got the same Ctrl-C: it leaves the queue or stops its run, then exits
            raise
    # the child queued its run as a terminal's run: owned by its pid
    record = next((r for r in RunStore(runs_db()).list() if r.owner_pid == proc.pid and r.created >= started - 1
                   and r.name == config["name"]), None)
    if code != 0 or record is None or record.status != "finished" or record.usable_checkpoint is None:
        state = f"run {record.id} {record.status}" if record else "no run recorded"
        raise DetectLabError(f"training {config['name']} did not finish (`detectlab train` exited with {code}; "
                             f"{state}); the mirror experiment needs both halves")
    return record.id


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab attack`` and ``detectlab mirror``."""
    p = sub.add_parser(
        "attack", help="confusion rate of FGSM / PGD / L-BFGS against eps, transfer matrix, cross-sample, blur "
                       "defence ([Petrželková 2024] §4.4, Tables 4.4-4.7)",
        description="Attack a labelled split with each detector (each image pushed away from its true class: fakes "
                    "towards 'real', reals towards 'fake') and report [Petrželková 2024]'s confusion rate (of the "
                    "fakes a detector decides fake, the share it decides real after the attack) and, per class, "
                    "the fakes called real and the reals called fake before and after.")
    add_detectors_and_split(p)
    p.add_argument("--limit", type=int, default=None, help="at most this many images (a seeded subset)")
    p.add_argument("--method", default="fgsm", choices=["fgsm", "pgd", "lbfgs"])
    p.add_argument("--eps", default="0.01,0.02,0.05", help="comma-separated, e.g. 0.01,0.02,0.05")
    p.add_argument("--transfer", action="store_true",
                   help="every detector judges every other's residuals (Table 4.6)")
    p.add_argument("--mirror", action="store_true",
                   help="two mirror models (trained with `detectlab train --part 1/2` and `--part 2/2`), each "
                        "attacking itself and the other (Table 4.5; [Petrželková 2024] used eps 0.025; `detectlab mirror` "
                        "trains the pair too)")
    p.add_argument("--cross-sample", action="store_true", help="one image's residual on every other image (Table 4.4)")
    p.add_argument("--sources", type=int, default=5, help="source images for --cross-sample (default 5)")
    p.add_argument("--defence-blur", type=float, default=None, metavar="SIGMA",
                   help="Gaussian blur of SIGMA px before the detector, at the last eps (Table 4.7)")
    p.add_argument("--csv", help="write every number here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_attack)

    m = sub.add_parser(
        "mirror", help="the mirror-model experiment end to end: train one detector on each half of the train split, "
                       "then let each attack itself and the other ([Petrželková 2024] Table 4.5)",
        description="Train BASE's shipped training config on part 1/2 (mirror-A) and part 2/2 (mirror-B) of the data "
                    "set's train split, one after the other through the run queue the app's Train tab shares "
                    "(`detectlab train --part`), then attack the held-out split with each model and judge the "
                    "residuals with both, as `detectlab attack A B --mirror` does.")
    m.add_argument("--data", default=None, help="labelled data set folder (default: the demo)")
    m.add_argument("--base", default=None,
                   help="shipped detector whose training config both halves use (default cnn-resnet18)")
    for key, typ in (("epochs", int), ("iterations", int), ("input-size", int), ("batch-size", int), ("lr", float),
                     ("threads", int), ("seed", int)):
        m.add_argument(f"--{key}", type=typ, default=None, help="replaces BASE's setting for both halves")
    m.add_argument("--split", default="test", help="split to attack: train, val, test or all (default test)")
    m.add_argument("--limit", type=int, default=None, help="at most this many images (a seeded subset)")
    m.add_argument("--method", default="fgsm", choices=["fgsm", "pgd", "lbfgs"])
    m.add_argument("--eps", default="0.01,0.02,0.025,0.05",
                   help="comma-separated (default 0.01,0.02,0.025,0.05; [Petrželková 2024] used 0.025)")
    m.add_argument("--csv", help="write every number here")
    m.add_argument("--quiet", action="store_true", help="no progress bars while attacking")
    m.set_defaults(func=_cmd_mirror)
