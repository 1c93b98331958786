"""A net's weights against its structure: loading a prototxt/caffemodel pair as Caffe does,
checking every blob's shape, and Caffe's own fillers for nets that have no weights yet.

Here, not in `viewer.caffe.model_io`, because the shapes a layer needs come from the net's
arithmetic (`netgraph.infer_shapes`); the file formats below know nothing of it.
"""
from __future__ import annotations

import math
import os

import numpy as np

from viewer.caffe.model_io import (MAX_BLOB_ELEMENTS, CaffeNet, legacy_blobs, read_caffemodel,
                                   read_prototxt, structure_of, weights_of)
from viewer.caffe.proto import caffe_pb2
from viewer.errors import ModelError
from viewer.net.netgraph import Shape, deploy_layers, infer_shapes, param_shapes


LEARNABLE = {"Convolution", "InnerProduct", "Scale", "BatchNorm", "PReLU"}


def check_input_size(net: CaffeNet, input_name: str, shape: tuple[int, ...]) -> None:
    """Refuse an input size at which some layer's weights would not fit (Caffe aborts on it).

    `infer_shapes` refuses inputs smaller than a kernel and Concat inputs that differ;
    an InnerProduct, whose weights fix its input size, is checked here.
    """
    shapes = infer_shapes(net.param, {input_name: shape})
    for layer in deploy_layers(net.param):
        if layer.type in LEARNABLE and layer.bottom:
            wanted = param_shapes(layer, shapes[layer.bottom[0]])
            have = [a.shape for a in net.weights.get(layer.name, [])]
            if [math.prod(s) for s in wanted] != [math.prod(s) for s in have]:
                raise ModelError(
                    f"at input {shape[2]}x{shape[3]} layer '{layer.name}' would need weights "
                    f"{wanted}, but it has {have}: this net runs only at its declared input "
                    "size (make it fully convolutional with `surgery` to run it on larger "
                    "images)")


def check_weights(net: CaffeNet, weights_source: str | None,
                  legacy: set[tuple[str, int]] = frozenset()) -> None:
    """Check every learnable layer has weights of the shapes its structure implies, exactly as
    Caffe 1.0 does; `legacy` names the blobs stored with num/channels/height/width."""
    shapes = infer_shapes(net.param)
    where = weights_source or net.source
    for layer in deploy_layers(net.param):
        expected = param_shapes(layer, shapes[layer.bottom[0]]) if layer.bottom else []
        if not expected:
            continue
        have = net.weights.get(layer.name)
        if have is None:
            raise ModelError(f"{where} has no weights for layer '{layer.name}'")
        if len(have) != len(expected):
            raise ModelError(f"layer '{layer.name}' needs {len(expected)} blobs, {where} has "
                             f"{len(have)}")
        net.weights[layer.name] = [_fit(layer.name, a, s, where, (layer.name, k) in legacy)
                                   for k, (a, s) in enumerate(zip(have, expected))]


def _fit(layer: str, array: np.ndarray, shape: Shape, where: str, legacy: bool) -> np.ndarray:
    """The weights in the shape the layer needs, when Caffe's Blob::ShapeEquals accepts them:
    a `shape` field must match exactly; a legacy num x channels x height x width blob must be
    the needed shape padded with leading 1s (1 x 1 x M x N for M x N weights)."""
    if array.shape == shape and not legacy:
        return array
    if legacy and len(shape) <= 4 and array.shape == (1,) * (4 - len(shape)) + shape:
        return array.reshape(shape)
    stored = f"legacy {array.shape}" if legacy else f"{array.shape}"
    raise ModelError(f"layer '{layer}': shape mismatch, the prototxt implies weights of shape "
                     f"{shape}, but {where} holds {stored}")


def load_net(prototxt: str | os.PathLike, weights: str | os.PathLike | None) -> CaffeNet:
    """Load a net as Caffe does: structure from the prototxt, weights matched by layer name.

    The shapes are checked against the structure (see `check_weights`), so a
    mismatched pair fails here with both shapes named rather than inside an engine.
    """
    param, warnings = read_prototxt(prototxt)
    param = structure_of(param)
    model = read_caffemodel(weights) if weights else caffe_pb2.NetParameter()
    net = CaffeNet(param, weights_of(model, str(weights)), source=str(prototxt),
                   warnings=warnings)
    check_weights(net, str(weights) if weights else None, legacy_blobs(model))
    return net


def init_weights(param: caffe_pb2.NetParameter, seed: int = 0) -> CaffeNet:
    """A net with Xavier-uniform weights and zero biases, as Caffe's "xavier" filler makes.

    Used for provisional models and for tests, which must hold for any weights.
    """
    rng = np.random.default_rng(seed)
    shapes = infer_shapes(param)
    weights = {}
    for layer in deploy_layers(param):
        wanted = param_shapes(layer, shapes[layer.bottom[0]]) if layer.bottom else []
        if not wanted:
            continue
        if any(math.prod(s) > MAX_BLOB_ELEMENTS for s in wanted):
            raise ModelError(f"layer '{layer.name}' would need weights of shape {wanted[0]}: "
                             "too large to initialise")
        fan_in = int(np.prod(wanted[0][1:])) if layer.type == "Convolution" else \
            int(np.prod(shapes[layer.bottom[0]][1:]))
        limit = np.sqrt(3.0 / fan_in)
        weights[layer.name] = _neutral_blobs(layer.type, wanted) or \
            [rng.uniform(-limit, limit, wanted[0]).astype(np.float32)] + \
            [np.zeros(s, np.float32) for s in wanted[1:]]
    return CaffeNet(structure_of(param), weights, source="<initialised>")


def _neutral_blobs(kind: str, wanted: list[tuple[int, ...]]) -> list[np.ndarray] | None:
    """Caffe's own starting values where random ones would blow activations up: BatchNorm
    with mean 0, variance 1 and factor 1 (zero statistics would divide by sqrt(eps)), and
    PReLU slopes of 0.25 (its default filler)."""
    if kind == "BatchNorm":
        return [np.zeros(wanted[0], np.float32), np.ones(wanted[1], np.float32),
                np.ones(wanted[2], np.float32)]
    if kind == "PReLU":
        return [np.full(wanted[0], 0.25, np.float32)]
    return None
