#!/usr/bin/env python3
"""FAISS IndexIVFFlat (and IndexHNSWFlat with --hnsw) all-vs-all k-NN on a .npy of embeddings
(k = 3 besides self), the peer of `snowscope rank --features X.npy` (benches/knn_at_scale.sh
runs both on the same file). The rows are L2-normalised as snowscope's default does.

Same recipe as snowscope's index: nlist = 8 sqrt(n) lists (snowscope may split a few),
k-means on 16 rows per list, then the smallest nprobe (or efSearch) whose closest match
equals the exact one for >= 99 % of 1,000 sampled rows (found by a sweep on those rows,
not timed, as snowscope's calibration is); then one timed all-vs-all search at that
setting, and the recall on 1,000 other sampled rows. THREADS threads (default 2).
Prints one JSON line per method: seconds (train + add + search), CPU seconds, peak RSS,
recall. Usage: faiss_ivf.py X.npy [--hnsw] [--no-ivf]. Requirements: benches/requirements.txt.
"""
import argparse
import json
import os
import resource
import time

import faiss
import numpy as np

K = 3


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def closest_other(index, x, rows, k):
    """For each of `rows`, its k nearest other rows (self dropped)."""
    _, idx = index.search(x[rows], k + 1)
    out = []
    for r, found in zip(rows, idx):
        out.append([j for j in found if j != r][:k])
    return out


def recall(found, exact):
    return float(np.mean([f[0] == e[0] for f, e in zip(found, exact) if e]))


def measure(name, build, setting, values, x, calibration, held_out, exact_cal, exact_held):
    """Sweeps `setting` over `values` on the calibration rows (untimed, on an untimed
    build), then times one build + all-vs-all search at the first value that reaches
    0.99, and reports the recall on the held-out rows."""
    index = build()
    chosen = values[-1]
    for v in values:
        setting(index, v)
        if recall(closest_other(index, x, calibration, 1), exact_cal) >= 0.99:
            chosen = v
            break
    del index
    cpu, start = cpu_seconds(), time.perf_counter()
    index = build()
    setting(index, chosen)
    _, idx = index.search(x, K + 1)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    held = [[j for j in idx[r] if j != r][:1] for r in held_out]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"impl": f"faiss {name}", "n": len(x), "d": x.shape[1], "k": K,
            "setting": chosen, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 1),
            "peak_rss_mb": round(rss), "recall_sampled": recall(held, exact_held),
            "threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("npy")
    parser.add_argument("--hnsw", action="store_true")
    parser.add_argument("--no-ivf", action="store_true")
    args = parser.parse_args()
    faiss.omp_set_num_threads(int(os.environ.get("THREADS", "2")))
    # A writable copy in RAM (normalize_L2 writes in place; a memory map is read-only).
    x = np.require(np.load(args.npy), np.float32, ["C", "W", "O"])
    faiss.normalize_L2(x)
    n, d = x.shape
    rng = np.random.default_rng(18)
    sampled = rng.choice(n, 2000, replace=False)
    calibration, held_out = sampled[:1000], sampled[1000:]
    flat = faiss.IndexFlatL2(d)
    flat.add(x)
    exact_cal = closest_other(flat, x, calibration, 1)
    exact_held = closest_other(flat, x, held_out, 1)
    del flat
    if not args.no_ivf:
        nlist = int(round(8 * np.sqrt(n)))

        def ivf():
            quantizer = faiss.IndexFlatL2(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist)
            train = x[rng.choice(n, min(n, 16 * nlist), replace=False)]
            index.cp.min_points_per_centroid = 1
            index.train(train)
            index.add(x)
            return index

        def nprobe(index, v):
            index.nprobe = v

        print(json.dumps(measure(f"IndexIVFFlat nlist={nlist}", ivf, nprobe,
                                 [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256],
                                 x, calibration, held_out, exact_cal, exact_held)), flush=True)
    if args.hnsw:
        def hnsw():
            index = faiss.IndexHNSWFlat(d, 32)
            index.hnsw.efConstruction = 40
            index.add(x)
            return index

        def ef(index, v):
            index.hnsw.efSearch = v

        print(json.dumps(measure("IndexHNSWFlat M=32", hnsw, ef, [16, 32, 64, 128, 256],
                                 x, calibration, held_out, exact_cal, exact_held)), flush=True)


if __name__ == "__main__":
    main()
