#!/usr/bin/env bash
# Extraction throughput side by side on this machine: snowscope (criterion bench
# `extract`) against PyTorch eager and ONNX Runtime (benches/peer_extract.py), all with
# 2 threads, batch 32, 224x224, EfficientNet-Lite0 avg-pooled features. Prints medians
# and ratios. Needs a Python with benches/requirements.txt: PYTHON=/path/to/venv/python.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
RAYON_NUM_THREADS=2 cargo bench --bench extract -- --noplot >/dev/null 2>&1
peers=$("$PYTHON" benches/peer_extract.py --threads 2 --batches 10 | grep '^{')
echo "$peers"
"$PYTHON" - "$peers" <<'PY'
import json, sys
import os
est = json.load(open(os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion/extract/efficientnet_lite0_b32_224/new/estimates.json")))
ours = 32 / (est["median"]["point_estimate"] / 1e9)
print(json.dumps({"engine": "snowscope (candle + custom kernels)", "images_per_s_median": round(ours, 1)}))
for line in sys.argv[1].splitlines():
    peer = json.loads(line)
    if "engine" not in peer:
        continue
    print(f"snowscope / {peer['engine']}: {ours / peer['images_per_s_median']:.2f}x")
PY
