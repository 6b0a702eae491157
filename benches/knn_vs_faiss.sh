#!/usr/bin/env bash
# Exact all-vs-all k-NN (k = 3, 1280-d, uniform random data) side by side: snowscope
# against FAISS IndexFlatL2, both with 2 threads. Prints times, peak RSS and ratios.
# Needs a Python with faiss-cpu (benches/requirements.txt): PYTHON=/path/to/venv/python.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SIZES=${*:-10000 50000}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
ours=$(RAYON_NUM_THREADS=2 cargo bench --bench knn_peer -- $SIZES 2>/dev/null | grep '^{')
theirs=$(OMP_NUM_THREADS=2 "$PYTHON" benches/faiss_knn.py $SIZES)
echo "$ours"
echo "$theirs"
"$PYTHON" - "$ours" "$theirs" <<'PY'
import json, sys
ours = {r["n"]: r for r in map(json.loads, sys.argv[1].splitlines())}
for r in map(json.loads, sys.argv[2].splitlines()):
    o = ours[r["n"]]
    print(f"N={r['n']}: snowscope {o['seconds']:.2f} s, FAISS {r['seconds']:.2f} s, "
          f"time ratio snowscope/FAISS {o['seconds'] / r['seconds']:.2f}")
PY
