#!/usr/bin/env python3
"""FAISS IndexFlatL2 all-vs-all k-NN (k = 3 besides self, so search k = 4), the peer of
benches/knn_peer.rs: same sizes, same data (uniform [0, 1) from SplitMix64, seed N), THREADS
threads (default 2). Prints one JSON line per N: seconds for index.add + search (median of
--repeat runs; default 3 up to N = 20,000 and 1 above), the CPU seconds of that run and peak
RSS. Usage: faiss_knn.py [--repeat R] [N ...] (default 10000 50000).
Requirements: benches/requirements.txt."""
import argparse
import json
import os
import resource
import statistics
import time

import faiss
import numpy as np

DIM, K = 1280, 3
CHUNK = 1 << 20


def uniform(length, seed):
    """SplitMix64 from `seed`, top 24 bits / 2^24: identical to snowscope::rng::Rng::f32.
    Generated in chunks so that the uint64 temporaries do not inflate the peak RSS."""
    out = np.empty(length, dtype=np.float32)
    with np.errstate(over="ignore"):
        for start in range(0, length, CHUNK):
            i = np.arange(start + 1, min(start + CHUNK, length) + 1, dtype=np.uint64)
            z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            out[start:start + len(i)] = (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)
    return out


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def search(x):
    """One timed all-vs-all search: (wall seconds, CPU seconds)."""
    cpu, start = cpu_seconds(), time.perf_counter()
    index = faiss.IndexFlatL2(DIM)
    index.add(x)
    _, idx = index.search(x, K + 1)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    assert idx.shape == (len(x), K + 1)
    return seconds, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10000, 50000])
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    threads = int(os.environ.get("THREADS", "2"))
    faiss.omp_set_num_threads(threads)
    search(uniform(1000 * DIM, 1).reshape(1000, DIM))  # warm-up, like the Rust side
    for n in args.sizes:
        x = uniform(n * DIM, n).reshape(n, DIM)
        repeat = args.repeat or (3 if n <= 20000 else 1)
        runs = sorted((search(x) for _ in range(repeat)), key=lambda r: r[0])
        seconds, cpu = runs[len(runs) // 2]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"impl": "faiss", "n": n, "d": DIM, "k": K, "threads": threads,
                          "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 2),
                          "peak_rss_mb": round(rss), "repeat": repeat,
                          "faiss": faiss.__version__}), flush=True)


if __name__ == "__main__":
    main()
