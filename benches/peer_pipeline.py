#!/usr/bin/env python3
"""The end-to-end peer of `snowscope rank DIR --no-cache`: the same job done as well as
Python can, for benches/pipeline_vs_python.sh.

  PIL decode (with Image.draft: JPEG DCT-domain reduced decoding) + bilinear resize to
  224x224 + (x - 127) / 128, on a thread pool that overlaps with inference;
  ONNX Runtime (CPU, 2 intra-op threads) on EfficientNet-Lite0 avg-pooled features;
  L2-normalised features, FAISS IndexFlatL2 k-NN (k = 3 besides self); mean distance.

    python benches/peer_pipeline.py DIR [--onnx model.onnx] [--threads 2]

The ONNX file is exported once beforehand (`--export PATH`, needs torch); the timed run
(printed as JSON) covers imports, model load, decoding, inference and the search.
Requirements: benches/requirements.txt.
"""
import argparse
import json
import os
import sys
import time

START = time.perf_counter()

EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def export(path):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    from peer_extract import load_model

    model = load_model()
    x = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["features"],
                      dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", nargs="?")
    parser.add_argument("--onnx", default="/tmp/snowscope-peer-efficientnet-lite0.onnx")
    parser.add_argument("--export", action="store_true", help="write --onnx and exit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    if args.export:
        export(args.onnx)
        return

    from concurrent.futures import ThreadPoolExecutor

    import faiss
    import numpy as np
    import onnxruntime as ort
    from PIL import Image

    def prepare(path):
        try:
            with Image.open(path) as im:
                im.draft("RGB", (224, 224))  # JPEG: decode at 1/2, 1/4, 1/8 scale
                im = im.convert("RGB").resize((224, 224), Image.BILINEAR)
            return (np.asarray(im, np.float32).transpose(2, 0, 1) - 127.0) / 128.0
        except Exception:  # skipped, as snowscope skips bad files
            return None

    files = sorted(os.path.join(root, f) for root, _, names in os.walk(args.dir) for f in names
                   if os.path.splitext(f)[1].lower() in EXTENSIONS)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    features = []
    with ThreadPoolExecutor(args.threads) as pool:
        batches = [files[i:i + args.batch] for i in range(0, len(files), args.batch)]
        pending = pool.map(lambda b: [x for x in map(prepare, b) if x is not None], batches)
        for arrays in pending:  # decoding of the next batches overlaps with this one
            if arrays:
                features.append(sess.run(None, {"input": np.stack(arrays)})[0])
    x = np.concatenate(features).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    faiss.omp_set_num_threads(args.threads)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    dist, _ = index.search(x, 4)
    scores = np.sqrt(np.maximum(dist[:, 1:], 0)).mean(axis=1)
    order = np.argsort(-scores)
    print(json.dumps({"impl": "python (PIL draft + ONNX Runtime + FAISS)", "images": len(x),
                      "seconds": round(time.perf_counter() - START, 3),
                      "top": [os.path.basename(files[i]) for i in order[:3]]}))


if __name__ == "__main__":
    main()
