#!/usr/bin/env bash
# The neighbour search at scale, side by side: `snowscope rank --features X.npy` (defaults:
# the inverted-file index above 50,000 rows) against FAISS IndexIVFFlat (and HNSW with
# HNSW=1) at the same recall (the closest match equal to the exact one for >= 99 % of
# sampled rows), on the same clustered embeddings (examples/clustered_npy), THREADS threads
# (default 2). Prints wall seconds and peak RSS of each (whole processes, /usr/bin/time),
# and the JSON lines. Usage: benches/knn_at_scale.sh N [N ...] (e.g. 100000 300000).
# Needs a Python with faiss-cpu (benches/requirements.txt): PYTHON=/path/to/venv/bin/python.
# The .npy files go to DATA (default /tmp/snowscope-scale), about 5 KB per row.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DATA=${DATA:-/tmp/snowscope-scale}
export THREADS=${THREADS:-2} RAYON_NUM_THREADS=${THREADS:-2} OMP_NUM_THREADS=${THREADS:-2}
mkdir -p "$DATA"
cargo build --release --quiet --bin snowscope --example clustered_npy
for n in "${@:-100000}"; do
    x="$DATA/x$n.npy"
    [[ -f $x ]] || target/release/examples/clustered_npy "$n" "$x"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    /usr/bin/time -f "snowscope N=$n: %e s wall, %U s user, %M KB peak RSS" \
        target/release/snowscope rank --features "$x" --paths "${x%.npy}.paths.txt" \
        --threads "$THREADS" --verbose --format json -o "$DATA/ranking$n.json" 2>&1 | grep -v '^wrote'
    "$PYTHON" -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['config']['search']))" \
        "$DATA/ranking$n.json"
    /usr/bin/time -f "FAISS N=$n: %e s wall, %U s user, %M KB peak RSS" \
        "$PYTHON" benches/faiss_ivf.py "$x" ${HNSW:+--hnsw}
done
