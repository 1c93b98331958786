"""The gallery: small deploy nets written after the papers of the model zoo, to reuse in tests.

`tests/nets/NAME.prototxt` holds each structure (our own files, not copies of the zoo's); `load`
gives it random weights that exercise every layer: random biases, BatchNorm statistics stored
as Caffe stores them (sums over a moving-average factor that is not 1), Scale factors around 1.
The geometry the tests expect of each net is worked out from its layers in `WINDOWS`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from viewer.net.weights import init_weights
from viewer.caffe import model_io

NETS = Path(__file__).parent / "nets"
NAMES = ["lenet_mnist", "cifar10_quick", "caffenet_style", "inception_block",
         "resnet_bottleneck", "squeezenet_fire", "mobilenet_v1_block", "mobilenet_v2_block"]
# name -> (classifier window = the declared input, stride of the class map), by hand:
# CaffeNet 4*2*2*2 = 32; GoogLeNet and ResNet 2*2*2 (conv1, pool1, the next stride 2); ...
WINDOWS = {
    "lenet_mnist": (28, 4), "cifar10_quick": (32, 8), "caffenet_style": (227, 32),
    "inception_block": (64, 8), "resnet_bottleneck": (64, 8), "squeezenet_fire": (64, 4),
    "mobilenet_v1_block": (64, 4), "mobilenet_v2_block": (64, 4),
}


def prototxt(name: str) -> Path:
    """The gallery file of `name`."""
    return NETS / f"{name}.prototxt"


def load(name: str, seed: int = 0) -> model_io.CaffeNet:
    """The gallery net `name` with random weights that make every layer count."""
    param, _ = model_io.read_prototxt(prototxt(name))
    net = init_weights(param, seed)
    net.source = str(prototxt(name))
    rng = np.random.default_rng(seed)
    kinds = {l.name: l.type for l in param.layer}
    for layer, blobs in net.weights.items():
        if kinds[layer] == "BatchNorm":
            factor = np.float32(rng.uniform(50, 1000))
            channels = blobs[0].shape
            blobs[0] = (rng.normal(0, 0.2, channels) * factor).astype(np.float32)
            blobs[1] = (rng.uniform(0.5, 2.0, channels) * factor).astype(np.float32)
            blobs[2] = np.array([factor], np.float32)
        elif kinds[layer] == "Scale":
            blobs[0] = rng.uniform(0.7, 1.3, blobs[0].shape).astype(np.float32)
            blobs[1:] = [rng.normal(0, 0.1, b.shape).astype(np.float32) for b in blobs[1:]]
        else:
            blobs[1:] = [rng.normal(0, 0.1, b.shape).astype(np.float32) for b in blobs[1:]]
    return net


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 picture with smooth colour blobs and edges, so activations vary."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    planes = []
    for _ in range(3):
        fy, fx, phase = rng.uniform(0.02, 0.2, 2).tolist() + [rng.uniform(0, 6)]
        planes.append(127 + 100 * np.sin(fy * y + phase) * np.cos(fx * x))
    picture = np.stack(planes, axis=-1) + rng.normal(0, 20, (height, width, 3))
    return np.clip(picture, 0, 255).astype(np.uint8)
