"""Shared bits of the bench scripts."""

import json
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_results(path: str | None, results: dict) -> None:
    """Save a bench's numbers as JSON when ``--out`` was given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=1))


@contextmanager
def running_app(env: dict):
    """``app.py --port 0`` as a user starts it (the app binds a free port itself and prints its URL once the
    server accepts requests); yields that URL, stops the app on the way out."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", "0"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for line in proc.stdout:
            m = re.search(r"running on (http://\S+/)", line)
            if m:
                yield m.group(1)
                return
        raise RuntimeError(f"app.py exited ({proc.wait()}) without serving")
    finally:
        proc.terminate()
        proc.wait()
