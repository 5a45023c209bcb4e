"""The ``detectlab`` command line: every tab's work is also a command here.

The commands live in ``detectlab.commands`` (one module per command group); this module assembles
the parser and runs the chosen command with one error handling."""

from __future__ import annotations

import argparse
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
    return parser


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

        with paths_allowed():  # a terminal's user may name any file they can read; a web client may not
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
