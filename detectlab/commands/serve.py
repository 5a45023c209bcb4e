"""`detectlab serve` (alias `detectlab app`): start the browser app (and its REST routes under /api/v1).

``--device auto|cpu|cuda`` is the flag every command has (``cli._add_device_flags``): checked before any
work and passed on through ``DETECTLAB_DEVICE``, so the detectors the app loads go there.
"""

from __future__ import annotations

import argparse


def _cmd_serve(args: argparse.Namespace) -> int:
    from detectlab import config

    # before the app builds (many seconds of imports): a bad DETECTLAB_DEVICE stops here with config.device's
    # message, as --device itself already did in cli.main
    print(f"detectors run on {config.device()}", flush=True)
    from detectlab.ui.app import launch

    launch(host=args.host, port=args.port, share=args.share)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab serve`` and its alias ``detectlab app``."""
    serve = sub.add_parser("serve", aliases=["app"], help="start the browser app (on 127.0.0.1 unless --host)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on; anything but loopback exposes the app (a warning says what)")
    serve.add_argument("--port", type=int, default=7860, help="0 = any free port (the printed URL says which)")
    serve.add_argument("--share", action="store_true", help="also open a public gradio.live link (warns first)")
    serve.set_defaults(func=_cmd_serve)
