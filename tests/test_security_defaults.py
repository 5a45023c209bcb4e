"""Safe defaults: loopback unless told, a warning when exposed, an optional login, a clean CLI.

The served app is a real ``detectlab serve`` process: it must print what ``--host 0.0.0.0``
exposes, refuse every request without the login from ``DETECTLAB_USER`` /
``DETECTLAB_PASSWORD``, answer with it, keep uploads under ``DETECTLAB_HOME/uploads`` and
remove them when it stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from child_output import ChildOutput

from detectlab.ui.app import exposure_warnings, is_loopback


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                           ("0.0.0.0", False), ("192.168.1.5", False), ("::", False)])
def test_loopback_hosts_need_no_warning(host, loopback):
    assert is_loopback(host) is loopback
    lines = exposure_warnings(host)
    assert (lines == []) is loopback
    if not loopback:
        assert f"listens on {host}" in lines[0] and "DETECTLAB_USER" in lines[-1]


def test_share_warns_even_on_loopback_and_login_silences_the_login_hint():
    lines = exposure_warnings("127.0.0.1", share=True)
    assert any("gradio.live" in line for line in lines) and any("DETECTLAB_PASSWORD" in line for line in lines)
    assert not any("DETECTLAB_PASSWORD" in line for line in exposure_warnings("0.0.0.0", share=True, login=True))


def test_serve_binds_loopback_by_default():
    from detectlab.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.share is False
    assert build_parser().parse_args(["app", "--host", "0.0.0.0"]).host == "0.0.0.0"  # `detectlab app` alias


@pytest.mark.slow
def test_exposed_server_warns_requires_the_login_and_cleans_its_uploads(tmp_path, demo_root):
    import httpx
    from gradio_client import Client, handle_file

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_TEMP_DIR", "DETECTLAB_HOME")}
    env.update(DETECTLAB_HOME=str(home), DETECTLAB_USER="alice", DETECTLAB_PASSWORD="s3cret-pw", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "detectlab", "serve", "--host", "0.0.0.0", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = ChildOutput(proc.stdout), ChildOutput(proc.stderr)
    try:
        m = out.wait_for(r"DetectLab running on http://[^:]+:(\d+)/", timeout=240)
        assert m, err.text[-3000:]
        url = f"http://127.0.0.1:{m.group(1)}/"
        warning = err.text
        assert "warning: DetectLab listens on 0.0.0.0" in warning and "no login is set" not in warning

        # without the login: the page, the config and the API are all refused
        assert httpx.get(url + "config", timeout=30).status_code == 401
        with pytest.raises(Exception):
            Client(url, verbose=False)
        with pytest.raises(Exception):
            Client(url, auth=("alice", "wrong"), verbose=False)

        image = next((demo_root / "real").glob("*.png"))
        client = Client(url, auth=("alice", "s3cret-pw"), verbose=False)
        info, _ = client.predict(handle_file(str(image)), "spectrum-durrall", "gradcam", 0.5, api_name="/detect")
        assert 0.0 <= info["p_fake"] <= 1.0
        uploads = [p for p in (home / "uploads").rglob(image.name)]
        assert uploads, "the upload did not land in DETECTLAB_HOME/uploads"
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop: the app's lifespan ends and clears its upload cache
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert not any(p.exists() for p in uploads), "uploads were left in the cache after the server stopped"


def test_runs_list_into_a_closed_pipe_ends_quietly(tmp_path):
    """``detectlab runs list | head -1``: the reader is gone before the first line; no traceback."""
    env = {**os.environ, "DETECTLAB_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "detectlab", "runs", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # closed before the command can write its header: the write meets EPIPE
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 141


def test_head_of_runs_list_in_a_shell(tmp_path):
    env = {**os.environ, "DETECTLAB_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(f"'{sys.executable}' -m detectlab runs list | head -1", shell=True, capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.stdout.startswith("run ") and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("argv,phrase", [
    (["data", "info", "a\0b"], "NUL byte"),
    (["eval", "spectrum-durrall", "d" * 5000], "too long"),
    (["train", "--data", "x" * 5000, "--epochs", "1"], "too long"),
    (["predict", "spectrum-durrall", "/" + "y" * 300 + "/z.png"], "too long"),
])
def test_cli_refuses_impossible_paths_with_a_message(argv, phrase, capsys):
    from detectlab.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and phrase in err and "Traceback" not in err
    assert len(err) < 400  # the 5,000 characters are not echoed back


def test_cli_os_errors_are_one_line(capsys, tmp_path, monkeypatch):
    from detectlab import cli
    from detectlab.commands import models

    def fail(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked"))

    monkeypatch.setattr(models, "_cmd_models", fail)
    assert cli.main(["models"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'locked'}: Permission denied\n"
