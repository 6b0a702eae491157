#!/usr/bin/env bash
# Whole-process comparison on folders of images, cold cache: `snowscope rank DIR --no-cache`
# against benches/peer_pipeline.py (PIL with draft decoding + ONNX Runtime + FAISS), both
# with 2 threads, alternating, 3 runs each; prints medians, peak RSS and the ratio.
# With FASTDUP_PYTHON set (a Python with `pip install fastdup==2.54`, kept in its own
# virtual environment), fastdup runs in the same rounds as a third peer
# (benches/peer_fastdup.py).
# Usage: PYTHON=venv/bin/python [FASTDUP_PYTHON=fdvenv/bin/python] benches/pipeline_vs_python.sh DIR [DIR ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BIN=${SNOWSCOPE:-${CARGO_TARGET_DIR:-target}/release/snowscope}
cargo build --release -q
[ -f /tmp/snowscope-peer-efficientnet-lite0.onnx ] || "$PYTHON" benches/peer_pipeline.py --export
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
stats=$(mktemp)
for dir in "$@"; do
    ours=(); theirs=(); fastdup=()
    for _ in 1 2 3; do
        /usr/bin/time -o "$stats" -f "%e %M" "$BIN" rank "$dir" --no-cache --threads 2 >/dev/null 2>&1 || true
        ours+=("$(cat "$stats")")
        /usr/bin/time -o "$stats" -f "%e %M" "$PYTHON" benches/peer_pipeline.py "$dir" --threads 2 >/dev/null 2>&1
        theirs+=("$(cat "$stats")")
        if [ -n "${FASTDUP_PYTHON:-}" ]; then
            /usr/bin/time -o "$stats" -f "%e %M" "$FASTDUP_PYTHON" benches/peer_fastdup.py "$dir" --threads 2 >/dev/null 2>&1
            fastdup+=("$(cat "$stats")")
        fi
    done
    "$PYTHON" - "$dir" "${ours[*]}" "${theirs[*]}" "${fastdup[*]}" <<'PY'
import statistics, sys
def parse(s):
    v = s.split()
    return statistics.median(map(float, v[0::2])), max(map(float, v[1::2])) / 1024
(ot, om), (pt, pm) = parse(sys.argv[2]), parse(sys.argv[3])
line = (f"{sys.argv[1]}: snowscope {ot:.2f} s ({om:.0f} MB), python {pt:.2f} s ({pm:.0f} MB), "
        f"time ratio snowscope/python {ot / pt:.2f}")
if sys.argv[4].strip():
    ft, fm = parse(sys.argv[4])
    line += f"; fastdup {ft:.2f} s ({fm:.0f} MB), time ratio snowscope/fastdup {ot / ft:.2f}"
print(line)
PY
done
