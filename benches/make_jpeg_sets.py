#!/usr/bin/env python3
"""Builds the JPEG folders of the end-to-end benchmark (issue: speed) from the development
photo set, deterministically:

  OUT/small/   2,000 photos of about 320x240: random crop (85-100 %), mirror, brightness
               and contrast jitter of the fashion200 photos, JPEG quality 90.
  OUT/camera/  2,000 photos of 4000x3000 (12 MP): the same photos upscaled (bicubic) with
               fine grain added, so the files carry camera-like high-frequency detail
               (about 2 MB each), JPEG quality 90.
  OUT/mid/     photos of ImageNet-like sizes: the long side 500-800 px, the short side
               375-600 px (bicubic upscale of the same crops, mild grain), JPEG quality 90.
  OUT/png224/  the same crops at 224x224 as PNG (only with --only png224): the model-bound
               set, where decoding is trivial (`--count 1000` for the README's figures).

    python benches/make_jpeg_sets.py OUT [--source ../shared/datasets/fashion200] [--count 2000]

Requirements: benches/requirements.txt (pillow, numpy).
"""
import argparse
import os
import random
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageEnhance

CAMERA = (4000, 3000)


def variant(src, seed, size):
    rng = random.Random(seed)
    img = Image.open(src).convert("RGB")
    w, h = img.size
    s = rng.uniform(0.85, 1.0)
    cw, ch = int(w * s), int(h * s)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.85, 1.15))
    return img.resize(size, Image.Resampling.BICUBIC), rng


def make(job):
    kind, src, dst, seed = job
    if os.path.exists(dst):
        return
    if kind == "small":
        img, _ = variant(src, seed, (320, 240))
    elif kind == "png224":
        img, _ = variant(src, seed, (224, 224))
    elif kind == "mid":
        rng = random.Random(seed + 7)
        long, short = rng.randint(500, 800), rng.randint(375, 600)
        size = (long, min(short, long)) if rng.random() < 0.7 else (min(short, long), long)
        img, _ = variant(src, seed, size)
        grain = np.random.default_rng(seed).normal(0, 3, (size[1], size[0], 1))
        pixels = np.asarray(img, dtype=np.float32) + grain
        img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    else:
        img, rng = variant(src, seed, CAMERA)
        grain = np.random.default_rng(seed).normal(0, 6, (CAMERA[1], CAMERA[0], 1))
        pixels = np.asarray(img, dtype=np.float32) + grain
        img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    img.save(dst, quality=90)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--source", default=os.path.join(here, "..", "..", "shared", "datasets", "fashion200"))
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--only", choices=["small", "camera", "mid", "png224"])
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    sources = sorted(os.path.join(args.source, f) for f in os.listdir(args.source) if f.endswith(".jpg"))
    jobs = []
    for kind in ["small", "camera", "mid", "png224"]:
        if kind != args.only and (args.only or kind == "png224"):
            continue
        os.makedirs(os.path.join(args.out, kind), exist_ok=True)
        ext = "png" if kind == "png224" else "jpg"
        for i in range(args.count):
            dst = os.path.join(args.out, kind, f"{kind}_{i:04d}.{ext}")
            jobs.append((kind, sources[i % len(sources)], dst, i))
    with ProcessPoolExecutor(args.jobs) as pool:
        list(pool.map(make, jobs, chunksize=8))


if __name__ == "__main__":
    main()
