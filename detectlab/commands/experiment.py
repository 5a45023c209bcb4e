"""`detectlab experiment`: the papers' experiments on a labelled folder, with reproducibility cards."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _value(text: str):
    """A setting's value as typed: JSON where it parses (numbers, lists, true/false), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _settings(pairs: list[str]) -> dict:
    from detectlab.experiments.registry import ExperimentError

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ExperimentError(f"--set takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = _value(value)
    return out


def _print_result(result, json_path: Path, html_path: Path) -> None:
    for name, rows in result.tables.items():
        print(f"\n{name}")
        if rows:
            keys = list(rows[0])
            print("  " + " | ".join(keys))
            for r in rows:
                print("  " + " | ".join(f"{r[k]:.4f}" if isinstance(r.get(k), float) else str(r.get(k)) for k in keys))
    if result.summary:
        print(f"\n{result.summary}")
    models = result.models or {}
    print(f"\nmodels fitted {models.get('fitted', 0)}, reused {models.get('reused', 0)}; "
          f"{result.timings.get('total', 0):.1f} s")
    print(f"card: {json_path}\n      {html_path}")


def _cmd_list(args: argparse.Namespace) -> int:
    from detectlab.experiments.registry import EXPERIMENTS

    for e in EXPERIMENTS.values():
        print(f"{e.name:16s} {e.title} ({e.reproduces})")
        print(f"{'':16s} settings: {json.dumps(e.defaults())}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from detectlab.commands import data_root
    from detectlab.experiments.card import write_card
    from detectlab.experiments.registry import experiment, run_experiment
    from detectlab.progress import TqdmProgress

    settings = _settings(args.set)
    exp = experiment(args.name)
    if "data" in exp.defaults() and "data" not in settings:
        settings["data"] = str(data_root(args))
    progress = TqdmProgress(disable=args.quiet)
    result = run_experiment(args.name, settings, progress=progress)
    progress.close()
    json_path, html_path = write_card(result, Path(args.out))
    _print_result(result, json_path, html_path)
    return 0


def _cmd_rerun(args: argparse.Namespace) -> int:
    from detectlab.experiments.card import rerun_card, write_card
    from detectlab.progress import TqdmProgress

    progress = TqdmProgress(disable=args.quiet)
    again = rerun_card(args.card, data=args.data, progress=progress)
    progress.close()
    out = Path(args.out) if args.out else Path(args.card).parent
    json_path, html_path = write_card(again.result, out, stem=f"{Path(args.card).stem}.rerun")
    _print_result(again.result, json_path, html_path)
    if not again.same_data:
        print("note: the data set's fingerprint differs from the card's (other files, sizes or splits)")
    if again.reproduced:
        print(f"reproduced: {again.compared} numbers within {args.tolerance:g} of the card")
        return 0
    print(f"NOT reproduced: {len(again.differences)} of {again.compared} numbers differ")
    for line in again.differences[:20]:
        print(f"  {line}")
    return 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab experiment list | run | rerun``."""
    from detectlab.experiments.card import TOLERANCE

    ex = sub.add_parser("experiment", help="the papers' experiments (cross-generator, trace risk, ...) with cards")
    esub = ex.add_subparsers(dest="experiment_command", required=True)
    ls = esub.add_parser("list", help="the experiments and their settings")
    ls.set_defaults(func=_cmd_list)
    run = esub.add_parser("run", help="run one experiment; writes NAME.json and NAME.html (the card) to --out")
    run.add_argument("name", help="cross-generator, leave-one-out, few-shot, trace-risk, embeddings, set-distance, "
                                  "calibration")
    run.add_argument("--data", default=None, help="labelled data set folder (default: the demo)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="a setting (repeatable), e.g. runs=5")
    run.add_argument("--out", default="experiments", help="folder for the card (default ./experiments)")
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(func=_cmd_run)
    re = esub.add_parser("rerun", help="run a card's experiment again and compare every number with the card")
    re.add_argument("card", help="the card's .json")
    re.add_argument("--data", default=None, help="the data set's folder on this machine, if not where the card says")
    re.add_argument("--out", default=None, help="folder for the new card (default: beside the old one)")
    re.add_argument("--tolerance", type=float, default=TOLERANCE, help=argparse.SUPPRESS)
    re.add_argument("--quiet", action="store_true")
    re.set_defaults(func=_cmd_rerun)
