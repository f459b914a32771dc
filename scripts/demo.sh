#!/usr/bin/env bash
# The main job: set up, then analyze Fashion-MNIST with ImageNet MobileNetV2.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p reports
exec .venv/bin/advisor analyze fashion-mnist --model mobilenet_v2 --sample 1000 \
  --json reports/fashion-mnist_mobilenet_v2_profile.json "$@"
