#!/usr/bin/env bash
# The whole product on Fashion-MNIST (100 images per class, 64 px, CPU-sized):
# analyze -> search (the advice's space, its configuration first) -> report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p reports
WS=${ADVISOR_WORKSPACE:-advisor-workspace}
.venv/bin/advisor analyze fashion-mnist:100 --model mobilenet_v2 --image-size 64 --sample 500 \
  --json reports/demo-analysis.json
.venv/bin/advisor search fashion-mnist:100 --model mobilenet_v2 --image-size 64 --strategy auto \
  --advice reports/demo-analysis.json --trials "${TRIALS:-10}" --workspace "$WS" --experiment demo \
  --study-name demo --json reports/demo-search.json
exec .venv/bin/advisor report --experiment demo --workspace "$WS" --out reports
