#!/usr/bin/env python3
"""Which input normalisation do the EfficientNet-Lite0 weights expect?

    /work/pyenv/bin/python weights/check_normalisation.py [--data DIR] [--json OUT]

Classifies the 200 images of the fashion200 set (classes.json: list of
{file stem: class}) with the full model (forward -> ImageNet logits) under
  imagenet : (x/255 - [0.485,0.456,0.406]) / [0.229,0.224,0.225]
  tf127    : (x - 127) / 128                (x in 0..255; TF EfficientNet-Lite)
  unit     : x/255 (no centring)            (control only)
after a PIL bilinear squash-resize to 224x224, and reports per normalisation:
  * mean max-softmax confidence,
  * per fashion class, a histogram of the top-1 ImageNet labels and how many
    of them are plausible for the class,
  * leave-one-out 1-NN class accuracy on the avg-pooled 1280-d features
    (cosine and L2).
Dev-time only; nothing from the dataset is written anywhere.
"""
import argparse
import collections
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS = os.path.join(HERE, "efficientnet-lite0.safetensors")

NORMS = {
    "imagenet": (np.array([0.485, 0.456, 0.406]) * 255.0, np.array([0.229, 0.224, 0.225]) * 255.0),
    "tf127": (np.array([127.0] * 3), np.array([128.0] * 3)),
    "unit": (np.zeros(3), np.full(3, 255.0)),
}

# ImageNet-1k indices that are a plausible top-1 for each fashion class.
JEANS = {608}  # jean
SHIRT = {610, 841, 474, 617, 834, 906, 869, 400, 457, 735}  # jersey, sweatshirt, cardigan, lab coat, suit, Windsor tie, trench coat, academic gown, bow tie, poncho
TSHIRT = {610, 841, 474}  # jersey/T-shirt, sweatshirt, cardigan
SANDAL = {774}  # sandal
HEELS = {774, 630, 502, 514}  # sandal, Loafer, clog, cowboy boot
SPORT = {770, 630, 502}  # running shoe, Loafer, clog
PLAUSIBLE = {
    "menjeans": JEANS, "womenjeans": JEANS,
    "menshirt": SHIRT, "womenshirt": SHIRT,
    "mentshirt": TSHIRT, "womentshirt": TSHIRT,
    "sandals": SANDAL, "flipflops": SANDAL,
    "womenheels": HEELS, "sportshoe": SPORT,
}


def imagenet_names():
    from torchvision.models import ResNet18_Weights  # category names only, no download
    return ResNet18_Weights.IMAGENET1K_V1.meta["categories"]


def load_model():
    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_name("efficientnet-lite0")
    missing, unexpected = model.load_state_dict(load_file(WEIGHTS), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    return model.eval()


def load_images(data_dir):
    entries = json.load(open(os.path.join(data_dir, "classes.json")))
    labels = {}
    for e in entries if isinstance(entries, list) else [entries]:
        labels.update(e)
    stems = sorted(labels, key=lambda s: (len(s), s))
    arrs = []
    for s in stems:
        im = Image.open(os.path.join(data_dir, f"{s}.jpg")).convert("RGB")
        im = im.resize((224, 224), Image.Resampling.BILINEAR)
        arrs.append(np.asarray(im, dtype=np.float32))
    return stems, [labels[s] for s in stems], np.stack(arrs)  # N,H,W,3 in 0..255


def run(model, x_nhwc, mean, std, batch=50):
    x = ((x_nhwc - mean.astype(np.float32)) / std.astype(np.float32)).transpose(0, 3, 1, 2)
    feats, logits = [], []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))
            f = model.extract_features(xb).mean(dim=(2, 3))
            feats.append(f)
            logits.append(model._fc(f))
    return torch.cat(feats).numpy(), torch.cat(logits)


def loo_1nn(feats, labels, metric):
    f = feats.astype(np.float64)
    if metric == "cosine":
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        d = -f @ f.T
    else:
        sq = (f * f).sum(1)
        d = sq[:, None] + sq[None, :] - 2 * f @ f.T
    np.fill_diagonal(d, np.inf)
    nn = d.argmin(1)
    y = np.array(labels)
    return float((y[nn] == y).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/datasets/fashion200")
    ap.add_argument("--json", help="write the summary numbers here")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    names = imagenet_names()
    model = load_model()
    stems, labels, x = load_images(args.data)
    classes = sorted(set(labels))
    summary = {}
    top1s = {}
    for norm, (mean, std) in NORMS.items():
        feats, logits = run(model, x, mean, std)
        prob = logits.softmax(1)
        conf = prob.max(1).values.numpy()
        top1 = logits.argmax(1).numpy()
        top1s[norm] = top1
        plausible = {}
        print(f"\n=== {norm}: mean max-softmax {conf.mean():.3f} (median {np.median(conf):.3f})")
        for c in classes:
            idx = [i for i, l in enumerate(labels) if l == c]
            hist = collections.Counter(top1[idx].tolist()).most_common()
            ok = sum(n for k, n in hist if k in PLAUSIBLE.get(c, set()))
            plausible[c] = ok
            shown = ", ".join(f"{k}:{names[k]}x{n}" for k, n in hist[:5])
            print(f"  {c:12s} plausible {ok:2d}/{len(idx)}  top-1: {shown}")
        acc = {m: loo_1nn(feats, labels, m) for m in ("cosine", "l2")}
        total_ok = sum(plausible.values())
        print(f"  plausible top-1 total: {total_ok}/{len(labels)}")
        print(f"  LOO 1-NN accuracy (avg-pooled 1280-d): cosine {acc['cosine']:.3f}, L2 {acc['l2']:.3f}")
        summary[norm] = {
            "mean_max_softmax": round(float(conf.mean()), 4),
            "plausible_top1": total_ok,
            "plausible_top1_per_class": plausible,
            "loo_1nn_cosine": round(acc["cosine"], 4),
            "loo_1nn_l2": round(acc["l2"], 4),
        }
    agree = float((top1s["imagenet"] == top1s["tf127"]).mean())
    print(f"\ntop-1 agreement imagenet vs tf127: {agree:.3f}")
    summary["top1_agreement_imagenet_vs_tf127"] = round(agree, 4)
    best = max(("imagenet", "tf127"), key=lambda n: (summary[n]["plausible_top1"], summary[n]["mean_max_softmax"]))
    print(f"better by plausible top-1 then confidence: {best}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
