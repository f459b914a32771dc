#!/usr/bin/env bash
# The CUDA path in one short run: analyze on CUDA and on the CPU (do they advise the same?), then a
# two-worker search on CUDA, sampling GPU utilisation. On a machine without a GPU it is a dry run of
# the same commands on the CPU (DEVICE=cpu), so the script itself is tested before a GPU is lent.
#
#   bash scripts/gpu_check.sh                 # DEVICE=auto: cuda when present
#   OUT=/tmp/gpu-check TRIALS=4 bash scripts/gpu_check.sh
#
# A lent GPU machine has torch but no package registry: build a wheelhouse of our other dependencies
# here first (`bash scripts/gpu_check.sh --wheelhouse DIR`), carry it, and the script installs from it
# with --no-index when `python -c "import advisor"` fails there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--wheelhouse" ]; then
  dir=${2:?usage: gpu_check.sh --wheelhouse DIR}
  mkdir -p "$dir"
  # everything but torch/torchvision (the GPU machine has its own build of those)
  .venv/bin/pip download -q -d "$dir" --no-deps "optuna>=4,<6" "mlflow>=3,<4" "mlflow-skinny>=3,<4" "timm>=0.9,<2" \
    "filelock" "pyyaml" "rich" "scikit-learn" "scipy" "numpy" "pillow" "matplotlib" "safetensors" "huggingface_hub"
  .venv/bin/pip wheel -q -w "$dir" --no-deps .
  echo "wheelhouse in $dir: $(ls "$dir" | wc -l) files"
  exit 0
fi

PY=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
if ! "$PY" -c "import advisor" 2>/dev/null; then
  [ -d "${WHEELHOUSE:-wheelhouse}" ] || { echo "advisor is not installed and no wheelhouse at ${WHEELHOUSE:-wheelhouse}" >&2; exit 2; }
  "$PY" -m pip install -q --no-index --find-links "${WHEELHOUSE:-wheelhouse}" advisor
fi
OUT=${OUT:-${TMPDIR:-/tmp}/advisor-gpu-check}
mkdir -p "$OUT"
DEVICE=${DEVICE:-auto}
if [ "$DEVICE" = auto ]; then
  DEVICE=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
fi
DATA=${DATA:-fashion-mnist:100}
SIZE=${SIZE:-64}
echo "[gpu_check] device $DEVICE, data $DATA, ${SIZE} px, output in $OUT"

SMI_PID=""
if [ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 500 > "$OUT/gpu_util.csv" &
  SMI_PID=$!
fi
trap '[ -n "$SMI_PID" ] && kill "$SMI_PID" 2>/dev/null || true' EXIT

run() { local name=$1; shift; local t0; t0=$(date +%s%N)
  "$PY" -c "from advisor.cli import main; raise SystemExit(main())" "$@" > "$OUT/$name.log" 2>&1 \
    || { echo "[gpu_check] $name failed:"; tail -5 "$OUT/$name.log"; exit 1; }
  echo "$name $(( ($(date +%s%N) - t0) / 1000000 ))" >> "$OUT/seconds.txt"; }
: > "$OUT/seconds.txt"
run analyze_dev analyze "$DATA" --model mobilenet_v2 --image-size "$SIZE" --sample 1000 --device "$DEVICE" --json "$OUT/analysis-$DEVICE.json"
run analyze_cpu analyze "$DATA" --model mobilenet_v2 --image-size "$SIZE" --sample 1000 --device cpu --json "$OUT/analysis-cpu.json"
run search search "$DATA" --model mobilenet_v2 --image-size "$SIZE" --strategy auto --advice "$OUT/analysis-$DEVICE.json" \
  --trials "${TRIALS:-4}" --workers 2 --device "$DEVICE" --workspace "$OUT/ws" --study-name gpu-check --json "$OUT/search.json"

"$PY" - "$OUT" "$DEVICE" <<'PY'
import json, sys
from pathlib import Path
out, dev = Path(sys.argv[1]), sys.argv[2]
a = {d: json.loads((out / f"analysis-{d}.json").read_text()) for d in {dev, "cpu"}}
secs = dict(line.split() for line in (out / "seconds.txt").read_text().splitlines())
n = a[dev]["profile"]["sample_size"]
summary = {
    "device": dev,
    "analyze_images_per_s": {d: round(a[d]["profile"]["sample_size"] / a[d]["profile"]["timings"]["pass"], 1) for d in a},
    "same_advice": a[dev]["advice"]["strategy"] == a["cpu"]["advice"]["strategy"]
                   and a[dev]["advice"]["params"] == a["cpu"]["advice"]["params"],
    "advice": {d: [a[d]["advice"]["strategy"], a[d]["advice"]["params"]] for d in a},
    "max_abs_block_shift_diff": max(abs((x["shift"] or 0) - (y["shift"] or 0)) for x, y in
                                    zip(a[dev]["profile"]["blocks"], a["cpu"]["profile"]["blocks"])),
    "search": {k: v for k, v in json.loads((out / "search.json").read_text()).items()
               if k in ("n_complete", "n_pruned", "n_failed", "best_value", "test_accuracy", "wall_time")},
    "seconds": {k: int(v) / 1000 for k, v in secs.items()},
}
util = out / "gpu_util.csv"
if util.exists():
    vals = [float(l.split(",")[1].split()[0]) for l in util.read_text().splitlines() if "," in l]
    summary["gpu_utilisation_percent"] = {"mean": round(sum(vals) / max(len(vals), 1), 1), "max": max(vals or [0])}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
PY
