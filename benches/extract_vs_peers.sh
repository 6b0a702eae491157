#!/usr/bin/env bash
# Extraction throughput side by side on this machine: snowscope (criterion bench
# `extract`) against PyTorch eager and ONNX Runtime (benches/peer_extract.py), all with
# 2 threads, batch 32, 224x224, EfficientNet-Lite0 avg-pooled features. The two run in
# alternating rounds (ROUNDS, default 3) so background load hits both alike; prints each
# round's medians and the median ratio. Needs a Python with benches/requirements.txt:
# PYTHON=/path/to/venv/python. SNOWSCOPE_KERNELS=portable measures the non-AVX-512 path;
# SNOWSCOPE_PRECISION=f32 the FP32 products where the default is BF16 (AMX).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-3}
EST="${CARGO_TARGET_DIR:-target}/criterion/extract/efficientnet_lite0_b32_224/new/estimates.json"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --bench extract --no-run >/dev/null 2>&1
rounds=()
for round in $(seq "$ROUNDS"); do
    RAYON_NUM_THREADS=2 cargo bench --bench extract -- --noplot >/dev/null 2>&1
    ours=$("$PYTHON" -c 'import json,sys; e=json.load(open(sys.argv[1])); print(32/(e["median"]["point_estimate"]/1e9))' "$EST")
    peers=$("$PYTHON" benches/peer_extract.py --threads 2 --batches 10 | grep '^{"engine"')
    rounds+=("{\"round\": $round, \"snowscope\": $ours, \"peers\": [$(echo "$peers" | paste -sd,)]}")
    echo "${rounds[-1]}"
done
"$PYTHON" - "${rounds[@]}" <<'PY'
import json, statistics, sys
rounds = [json.loads(r) for r in sys.argv[1:]]
ours = [r["snowscope"] for r in rounds]
print(f"snowscope: median {statistics.median(ours):.1f} images/s over {len(ours)} rounds")
for engine in [p["engine"] for p in rounds[0]["peers"]]:
    theirs = [next(p["images_per_s_median"] for p in r["peers"] if p["engine"] == engine) for r in rounds]
    ratios = [o / t for o, t in zip(ours, theirs)]
    print(f"{engine}: median {statistics.median(theirs):.1f} images/s; "
          f"snowscope / {engine} per round {[round(x, 2) for x in ratios]}, median {statistics.median(ratios):.2f}x")
PY
