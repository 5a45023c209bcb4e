"""Shared bits of the bench scripts."""

import json
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def describe_device(name: str | None = None) -> str:
    """The device a bench's models run on, in words: ``config.device()`` (``DETECTLAB_DEVICE``, else a CUDA GPU
    where PyTorch sees one, else the CPU) unless ``name`` says, with the card or the CPU and its cores."""
    import os
    import platform

    import torch

    from detectlab import config

    dev = config.device(name)
    if dev.type == "cuda":
        what = f"{torch.cuda.get_device_name(dev)}, CUDA {torch.version.cuda}"
    else:
        what = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"torch threads {torch.get_num_threads()}, no GPU used")
    return f"{dev} ({what}); torch {torch.__version__}"


def announce_device(name: str | None = None) -> str:
    """Print ``device: ...`` (``describe_device``) before a bench starts; returns the text."""
    text = describe_device(name)
    print(f"device: {text}", flush=True)
    return text


def write_results(path: str | None, results: dict) -> None:
    """Save a bench's numbers as JSON when ``--out`` was given, with the device they were measured on."""
    if "device" not in results:
        results = {"device": describe_device(), **results}
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
