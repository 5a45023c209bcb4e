"""The ``detectlab`` command line: every tab's work is also a command here.

The commands live in ``detectlab.commands`` (one module per command group); this module assembles
the parser and runs the chosen command with one error handling."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from detectlab.config import set_offline_env
from detectlab.errors import DetectLabError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; every sub-command comes from its module under ``detectlab.commands``."""
    from detectlab.commands import register_all

    parser = argparse.ArgumentParser(prog="detectlab", description="Synthetic image detection lab.")
    register_all(parser.add_subparsers(dest="command", required=True))
    _add_device_flags(parser)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):  # an alias maps to the same parser
            yield from _leaf_parsers(child)


def _add_device_flags(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda`` on every command that lacks its own: the models it loads go there."""
    from detectlab.config import DEVICES

    for leaf in _leaf_parsers(parser):
        if "--device" not in leaf._option_string_actions:
            leaf.add_argument("--device", default=None, metavar="|".join(DEVICES),
                              help="where models run: auto (CUDA when a GPU is visible, else the CPU; default), cpu, "
                                   "cuda or cuda:N; also DETECTLAB_DEVICE")


@contextlib.contextmanager
def _use_device(args: argparse.Namespace):
    """Check ``--device`` before any work and pass it to everything the command loads (``config.device()``
    reads ``DETECTLAB_DEVICE``) while the command runs; an in-process caller's environment is restored after."""
    from detectlab.config import device

    name = getattr(args, "device", None)
    if not name:
        yield
        return
    device(name)  # an unknown name or a missing GPU is refused here, with the choices
    before = os.environ.get("DETECTLAB_DEVICE")
    os.environ["DETECTLAB_DEVICE"] = str(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DETECTLAB_DEVICE", None)
        else:
            os.environ["DETECTLAB_DEVICE"] = before


def _check_path_arguments(args: argparse.Namespace) -> None:
    """Refuse a NUL byte or an over-long name in any text argument before a command touches the disk."""
    from detectlab.data.overview import check_path_text

    for key, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, (str, Path)):
                check_path_text(str(text), f"--{key.replace('_', '-')}")


def _os_message(exc: OSError) -> str:
    name = str(exc.filename or "")
    shown = name if len(name) <= 120 else f"{name[:60]}…{name[-40:]} ({len(name):,} characters)"
    return f"{shown + ': ' if shown else ''}{exc.strerror or exc}"


def _quiet_broken_pipe() -> int:
    """stdout's reader went away (``detectlab runs list | head -1``): stop quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not raise again
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the pipe


def main(argv: list[str] | None = None) -> int:
    set_offline_env()
    args = build_parser().parse_args(argv)
    try:
        _check_path_arguments(args)
        from detectlab.catalog import paths_allowed

        # a terminal's user may name any file they can read; a web client may not
        with _use_device(args), paths_allowed():
            code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except (DetectLabError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a file name too long, a folder that cannot be read
        print(f"error: {_os_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
