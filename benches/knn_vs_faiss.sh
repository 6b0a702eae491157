#!/usr/bin/env bash
# Exact all-vs-all k-NN (k = 3 besides self, 1280-d, uniform [0, 1) data from SplitMix64,
# identical on both sides) side by side: snowscope against FAISS IndexFlatL2, both with
# THREADS threads (default 2). Prints the JSON lines, then per N the times, their ratio and
# peak RSS. Usage: benches/knn_vs_faiss.sh [N ...] (default 10000 50000).
# Needs a Python with faiss-cpu (benches/requirements.txt): PYTHON=/path/to/venv/bin/python.
# KNN_PEER=/path/to/built/knn_peer skips the cargo build (the binary must be current).
# The CPU seconds show whether the machine was shared: near THREADS x seconds when not.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export THREADS=${THREADS:-2} RAYON_NUM_THREADS=${THREADS:-2} OMP_NUM_THREADS=${THREADS:-2}
SIZES=${*:-10000 50000}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n ${KNN_PEER:-} ]]; then
    ours=$("$KNN_PEER" $SIZES)
else
    ours=$(cargo bench --bench knn_peer -- $SIZES 2>/dev/null | grep '^{')
fi
theirs=$("$PYTHON" benches/faiss_knn.py $SIZES)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$ours"
echo "$theirs"
"$PYTHON" - "$ours" "$theirs" <<'PY'
import json, sys
ours = {r["n"]: r for r in map(json.loads, sys.argv[1].splitlines())}
for r in map(json.loads, sys.argv[2].splitlines()):
    o = ours[r["n"]]
    print(f"N={r['n']}: snowscope {o['seconds']:.2f} s ({o['cpu_seconds']:.1f} CPU s), "
          f"FAISS {r['seconds']:.2f} s ({r['cpu_seconds']:.1f} CPU s), "
          f"time ratio snowscope/FAISS {o['seconds'] / r['seconds']:.2f}, "
          f"peak RSS {o['peak_rss_mb']} MB / {r['peak_rss_mb']} MB")
PY
