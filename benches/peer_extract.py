#!/usr/bin/env python3
"""Peer throughput for `benches/extract.rs`: EfficientNet-Lite0 feature
extraction (extract_features + global average pool -> 1280-d) on CPU with
  (a) PyTorch eager, torch.set_num_threads(T), inference_mode
  (b) ONNX Runtime CPU EP, intra_op_num_threads=T, inter_op_num_threads=1,
      on the same graph exported at run time (torch.onnx.export, opset 17,
      TorchScript exporter, dynamic batch axis) into a temporary directory.

    /work/pyenv/bin/python benches/peer_extract.py [--batches 10] [--batch 32] [--threads 2]

Engines are timed batch-by-batch interleaved, so background load hits both
alike. Input is a fixed N(0,1) tensor [batch,3,224,224] (seed 0); pre-processing and
image decoding are NOT timed, only the network. Prints, per engine, the median
images/s over --batches timed batches (after --warmup untimed ones) and a JSON
line {"engine": ..., "images_per_s_median": ...}, then the max abs difference
between the ORT and torch features.
"""
import argparse
import json
import os
import warnings
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(REPO, "weights", "efficientnet-lite0.safetensors")


class PooledFeatures(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.extract_features(x).mean(dim=(2, 3))


def load_model():
    from efficientnet_lite_pytorch import EfficientNet
    from safetensors.torch import load_file

    net = EfficientNet.from_name("efficientnet-lite0")
    missing, unexpected = net.load_state_dict(load_file(WEIGHTS), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    return PooledFeatures(net).eval()


def report(engine, rates, threads, batch, extra=None):
    med = statistics.median(rates)
    print(f"{engine:14s} median {med:8.2f} images/s  (min {min(rates):.2f}, max {max(rates):.2f}, n={len(rates)})")
    line = {"engine": engine, "images_per_s_median": round(med, 3), "batch": batch, "threads": threads, "batches": len(rates)}
    if extra:
        line.update(extra)
    print(json.dumps(line))
    return med


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # legacy exporter notice
    warnings.filterwarnings("ignore", message="Constant folding")
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    model = load_model()
    x = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "efficientnet-lite0-avg.onnx")
        torch.onnx.export(
            model, (x[:1],), path, dynamo=False, opset_version=17,
            input_names=["input"], output_names=["features"],
            dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}},
        )
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    xn = x.numpy()

    def torch_step():
        with torch.inference_mode():
            return model(x)

    def ort_step():
        return sess.run(None, {"input": xn})[0]

    engines = {"torch-eager": torch_step, "onnxruntime-cpu": ort_step}
    print(f"load average before: {os.getloadavg()[0]:.2f} (cpus {os.cpu_count()})")
    for fn in engines.values():
        for _ in range(args.warmup):
            fn()
    # Interleave the engines batch by batch so that background load on the
    # machine hits both alike; the per-engine medians are then comparable.
    rates = {name: [] for name in engines}
    for _ in range(args.batches):
        for name, fn in engines.items():
            t0 = time.perf_counter()
            fn()
            rates[name].append(args.batch / (time.perf_counter() - t0))
    print(f"load average after:  {os.getloadavg()[0]:.2f}")
    report("torch-eager", rates["torch-eager"], args.threads, args.batch, {"torch": torch.__version__})
    report("onnxruntime-cpu", rates["onnxruntime-cpu"], args.threads, args.batch, {"onnxruntime": ort.__version__})

    ref = torch_step().numpy()
    out = ort_step()
    diff = float(np.abs(out - ref).max())
    print(f"max |ort - torch| = {diff:.3e}  (features absmax {np.abs(ref).max():.3f}, shape {list(ref.shape)})")
    print(json.dumps({"check": "ort_vs_torch_max_abs_diff", "value": diff}))
    return 0 if diff < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
