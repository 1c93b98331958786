"""Shared fixtures: the bundled LeNet with random weights and a second net of another shape.

Tests hold for any weights, so they never depend on what a trained model predicts.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from viewer.net.weights import init_weights
from viewer.caffe import model_io
from viewer.files import paths

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# A classifier unlike LeNet: 3 input channels, padding, AVE pooling with ceil rounding, a
# stride-2 grouped convolution, LRN, a padded max pool, Flatten, two InnerProducts, Softmax.
OTHER_NET = """
name: "OtherNet"
input: "image"
input_dim: 1 input_dim: 3 input_dim: 32 input_dim: 32
layer { name: "conv_a" type: "Convolution" bottom: "image" top: "conv_a"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu_a" type: "ReLU" bottom: "conv_a" top: "conv_a" }
layer { name: "pool_a" type: "Pooling" bottom: "conv_a" top: "pool_a"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "conv_b" type: "Convolution" bottom: "pool_a" top: "conv_b"
        convolution_param { num_output: 12 kernel_size: 3 stride: 2 group: 2 } }
layer { name: "norm_b" type: "LRN" bottom: "conv_b" top: "norm_b"
        lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 } }
layer { name: "pool_b" type: "Pooling" bottom: "norm_b" top: "pool_b"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }
layer { name: "flat" type: "Flatten" bottom: "pool_b" top: "flat" }
layer { name: "fc1" type: "InnerProduct" bottom: "flat" top: "fc1"
        inner_product_param { num_output: 30 } }
layer { name: "relu_fc" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
        inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc2" top: "prob" }
"""

# A classifier that is not square anywhere: input 23x30, kernels 3x5, 2x3, 3x2 (dilated to a
# 5x2 span), 3x2, strides 1x2, 2x1, 3x2, pads 2x1, 1x0, 1x0, and a 6x4x6 InnerProduct input,
# so that any swap of height and width changes a shape or a number. pool1 clips its last row.
NONSQUARE_NET = """
name: "NonSquare"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 2 dim: 23 dim: 30 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_h: 3 kernel_w: 5 stride_h: 1 stride_w: 2
                            pad_h: 2 pad_w: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1
                        pad_h: 1 pad_w: 0 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 6 kernel_size: 3 kernel_size: 2
                            dilation: 2 dilation: 1 } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 3 stride_w: 2
                        pad_h: 1 pad_w: 0 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        inner_product_param { num_output: 7 } }
layer { name: "relu_ip" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
"""


def random_biases(net: model_io.CaffeNet, seed: int) -> model_io.CaffeNet:
    """Give every bias random values so that a lost bias shows in the outputs."""
    rng = np.random.default_rng(seed)
    for blobs in net.weights.values():
        for k in range(1, len(blobs)):
            blobs[k] = rng.normal(0, 0.1, blobs[k].shape).astype(np.float32)
    return net


@pytest.fixture
def lenet() -> model_io.CaffeNet:
    """The bundled classifier structure with random weights."""
    param, _ = model_io.read_prototxt(paths.CLASSIFIER_PROTOTXT)
    return random_biases(init_weights(param, seed=7), 7)


@pytest.fixture
def classes(lenet) -> int:
    """How many classes the bundled LeNet has: 36 characters, plus background once trained so."""
    return lenet.param.layer[-1].inner_product_param.num_output


@pytest.fixture
def other_net() -> model_io.CaffeNet:
    param, _ = model_io.parse_prototxt(OTHER_NET, "other.prototxt")
    return random_biases(init_weights(param, seed=3), 3)


@pytest.fixture
def nonsquare_net() -> model_io.CaffeNet:
    """NONSQUARE_NET with random weights and biases."""
    param, _ = model_io.parse_prototxt(NONSQUARE_NET, "nonsquare.prototxt")
    return random_biases(init_weights(param, seed=13), 13)


@pytest.fixture
def lenet_files(tmp_path, lenet):
    """The random-weight LeNet written to disk as a prototxt/caffemodel pair."""
    proto, weights = tmp_path / "lenet.prototxt", tmp_path / "lenet.caffemodel"
    model_io.write_net(lenet, proto, weights)
    return proto, weights


def plate_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A gray image with dark strokes on light ground, so activations are not all zero."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width), 220, np.uint8)
    for _ in range(max(1, width // 12)):
        x, y = rng.integers(0, width), rng.integers(0, height)
        image[max(0, y - 8):y + 8, max(0, x - 2):x + 2] = rng.integers(0, 60)
    noise = rng.normal(0, 8, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def pytest_collection_modifyitems(session, config, items) -> None:
    """The soak tests first, while this process holds nothing of the other tests: they assert
    that memory stays flat over hundreds of images, and later in a full run the heap that earlier
    tests left behind (a process of 1.3 GB) moves their medians by tens of MB on its own (+40 MB
    once in CI, against +10 MB for the same soak in a fresh process)."""
    items.sort(key=lambda item: item.nodeid.split("::")[0] != "tests/test_soak.py")
