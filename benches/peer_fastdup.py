#!/usr/bin/env python3
"""fastdup as a peer of `snowscope rank DIR --no-cache`, for benches/pipeline_vs_python.sh.

fastdup (PyPI `fastdup`, C++ with its own bundled ONNX model) embeds every image, finds
each one's nearest neighbours and reports outliers: the same job. Its licence is
non-commercial, so it is a benchmark peer only, never a dependency of snowscope.

    python benches/peer_fastdup.py DIR [--threads 2]

The timed run (printed as JSON) covers imports, model load, decoding, inference, the
neighbour search and the outlier table, from a fresh work folder (nothing cached).
Requirements: `pip install fastdup==2.54` in its own virtual environment (its pinned
dependencies differ from benches/requirements.txt).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

START = time.perf_counter()
# No telemetry from a benchmark.
os.environ.setdefault("SENTRY_OPT_OUT", "1")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import fastdup

    work = tempfile.mkdtemp(prefix="fastdup-peer-")
    try:
        fd = fastdup.create(work_dir=work, input_dir=args.dir)
        fd.run(num_threads=args.threads, overwrite=True, nearest_neighbors_k=3)
        outliers = fd.outliers()
        top = [os.path.relpath(p, args.dir) for p in outliers["filename_outlier"].head(10)]
        images = int(len(fd.annotations()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"seconds": time.perf_counter() - START, "images": images, "top": top}))


if __name__ == "__main__":
    sys.exit(main())
