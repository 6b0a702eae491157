#!/usr/bin/env python3
"""FAISS IndexFlatL2 all-vs-all k-NN (k = 3 besides self, so search k = 4), the peer of
benches/knn_peer.rs: same sizes, same data (uniform [0,1) from SplitMix64, seed N),
2 threads. Prints one JSON line per N. Requirements: benches/requirements.txt."""
import json
import resource
import sys
import time

import faiss
import numpy as np

DIM, K = 1280, 3
MASK = (1 << 64) - 1


def uniform(n, seed):
    # SplitMix64, vectorised; identical to the Rust bench's generator.
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)) & np.uint64(MASK)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24))


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10000, 50000]
    faiss.omp_set_num_threads(2)
    for n in sizes:
        x = uniform(n * DIM, n).reshape(n, DIM)
        start = time.perf_counter()
        index = faiss.IndexFlatL2(DIM)
        index.add(x)
        dist, idx = index.search(x, K + 1)
        seconds = time.perf_counter() - start
        assert idx.shape == (n, K + 1)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"impl": "faiss", "n": n, "d": DIM, "k": K, "seconds": round(seconds, 3),
                          "peak_rss_mb": round(rss), "faiss": faiss.__version__}), flush=True)


if __name__ == "__main__":
    main()
