"""`detectlab runs`: the training run history the app's Train tab shows."""

from __future__ import annotations

import argparse
import json


def _cmd_runs_list(args: argparse.Namespace) -> int:
    from detectlab.runs import RunStore
    from detectlab.train.layout import runs_db

    store = RunStore(runs_db())
    print(f"{'run':24s} {'status':10s} {'arch':40s} {'epochs':>6s} {'test acc':>8s}  name")
    for r in store.list():
        acc = (r.result.get("test") or {}).get("accuracy")
        print(f"{r.id:24s} {r.status:10s} {str(r.config.get('arch')):40s} {len(store.epochs(r.id)):6d} "
              f"{'' if acc is None else format(acc, '8.4f'):>8s}  {r.name}")
    return 0


def _cmd_runs_show(args: argparse.Namespace) -> int:
    from detectlab.runs import RunStore
    from detectlab.train.layout import runs_db

    store = RunStore(runs_db())
    try:
        r = store.get(args.run_id)
    except KeyError as exc:
        raise ValueError(str(exc)) from None
    print(json.dumps({"id": r.id, "name": r.name, "status": r.status, "error": r.error, "checkpoint": r.checkpoint,
                      "config": r.config, "epochs": store.epochs(r.id), "result": r.result}, indent=1, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab runs list`` and ``detectlab runs show``."""
    ru = sub.add_parser("runs", help="the training run history").add_subparsers(dest="runs_command", required=True)
    rl = ru.add_parser("list", help="all runs with status and final metrics")
    rl.set_defaults(func=_cmd_runs_list)
    rs = ru.add_parser("show", help="config, per-epoch metrics and result of one run")
    rs.add_argument("run_id")
    rs.set_defaults(func=_cmd_runs_show)
