"""What a forward pass costs before it runs: its FLOPs, and the memory it needs at an input size.

Both come from `netgraph.infer_shapes`, so they are known before anything is allocated: the
viewer asks an engine's `peak_bytes` first and tells the user an image is too large instead of
running out of memory. Each engine says what it holds (`viewer.engines.base.Engine.peak_bytes`),
from the bounds here: every blob held at once plus the largest scratch (`generic_peak_bytes`),
or what is alive when each blob is freed after its last reader (`liveness_peak_bytes`).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from viewer.net import netgraph
from viewer.caffe.model_io import CaffeNet
from viewer.caffe.proto import caffe_pb2

FLOAT = 4
# Image pixels a full-size picture is blended at a time (render.blend works in bands of rows).
BAND_PIXELS = 1 << 18
# A dense map must fit in this much memory, engine and results together.
MEMORY_LIMIT = 2 * 1024 ** 3


def _shapes(net: CaffeNet, input_shape: tuple[int, ...]) -> dict[str, netgraph.Shape]:
    (name, _), = netgraph.input_shapes(net.param).items()
    return netgraph.infer_shapes(net.param, {name: tuple(input_shape)})


def im2col_size(layer, shapes: dict[str, netgraph.Shape]) -> tuple[int, int]:
    """A Convolution's (output elements, inputs per output): its product's two factors."""
    p = layer.convolution_param
    cin = shapes[layer.bottom[0]][1] // p.group
    return math.prod(shapes[layer.top[0]]), cin * math.prod(netgraph.conv_kernel(p).kernel)


def layer_flops(layer, shapes: dict[str, netgraph.Shape]) -> int:
    """Multiply-adds x 2 of one Convolution or InnerProduct (0 for any other layer)."""
    if layer.type == "Convolution":
        outputs, fan_in = im2col_size(layer, shapes)
        return 2 * outputs * fan_in
    if layer.type == "InnerProduct":
        return 2 * math.prod(shapes[layer.top[0]]) * math.prod(shapes[layer.bottom[0]][1:])
    return 0


def layer_traffic(layer, shapes: dict[str, netgraph.Shape]) -> int:
    """Elements one layer reads and writes: its bottoms and top, and a Convolution's im2col
    block (what makes conv1 and the poolings memory-bound)."""
    elements = sum(math.prod(shapes[b]) for b in layer.bottom) + math.prod(shapes[layer.top[0]])
    if layer.type == "Convolution":
        outputs, fan_in = im2col_size(layer, shapes)
        elements += outputs // shapes[layer.top[0]][1] * fan_in
    return elements


def forward_flops(net: CaffeNet, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds x 2 of the Convolution and InnerProduct layers for an N x C x H x W input."""
    shapes = _shapes(net, input_shape)
    return sum(layer_flops(layer, shapes) for layer in netgraph.deploy_layers(net.param))


def reference_scratch(layer, shapes: dict[str, netgraph.Shape]) -> int:
    """Elements the numpy reference engine allocates for a layer beyond its output: a
    Convolution's (`_conv_scratch`), Pooling's padded canvas (as large as stride x kernel,
    whatever the input), LRN's float64 window sums (five float64 copies). A pad or stride of
    15000 costs gigabytes here, so it must be counted before the pass."""
    if not layer.bottom:
        return 0
    bottom = shapes[layer.bottom[0]]
    if layer.type == "Convolution":
        return _conv_scratch(layer, shapes)
    if layer.type == "Pooling":
        top = shapes[layer.top[0]]
        window = netgraph.pool_kernel(layer.pooling_param, bottom)
        return top[0] * top[1] * math.prod((o - 1) * s + k for o, s, k in
                                           zip(top[2:], window.stride, window.kernel))
    if layer.type == "LRN":
        return 10 * math.prod(bottom)
    return 0


def generic_peak_bytes(net: CaffeNet, input_shape: tuple[int, ...]) -> int:
    """An upper bound for engines that keep every blob: all blobs, plus the largest scratch
    any layer needs in the numpy reference (`reference_scratch`)."""
    shapes = _shapes(net, input_shape)
    blobs = sum(math.prod(s) for s in shapes.values())
    scratch = max((reference_scratch(layer, shapes)
                   for layer in netgraph.deploy_layers(net.param)), default=0)
    return (blobs + scratch) * FLOAT


def _conv_scratch(layer, shapes: dict[str, netgraph.Shape]) -> int:
    """Elements a convolution holds besides its blobs: the padded input, one group's im2col,
    and the product before it takes its final layout (per group, then joined, when grouped:
    MobileNet's depthwise convolutions have one group per channel)."""
    outputs, fan_in = im2col_size(layer, shapes)
    bottom = shapes[layer.bottom[0]]
    ph, pw = netgraph.conv_kernel(layer.convolution_param).pad
    padded = math.prod(bottom[:2]) * (bottom[2] + 2 * ph) * (bottom[3] + 2 * pw) \
        if ph or pw else 0
    products = outputs * (2 if layer.convolution_param.group > 1 else 1)
    return padded + outputs // shapes[layer.top[0]][1] * fan_in + products


def liveness_peak_bytes(net: CaffeNet, input_shape: tuple[int, ...], blobs: Sequence[str],
                        scratch: Callable[[caffe_pb2.LayerParameter, dict], int]) -> int:
    """For engines that free a blob after its last reader (onnxruntime without its arena):
    the most that is alive at once, with the running layer's output and the elements it
    allocates beyond it (`scratch(layer, shapes)`, the engine's own knowledge)."""
    shapes = _shapes(net, input_shape)
    layers = [l for l in netgraph.deploy_layers(net.param) if l.type != "Input"]
    last_read = {b: k for k, l in enumerate(layers) for b in l.bottom}
    (name, _), = netgraph.input_shapes(net.param).items()
    alive = {name: math.prod(shapes[name])}
    peak = alive[name]
    for k, layer in enumerate(layers):
        extra = scratch(layer, shapes)
        in_place = list(layer.top) == list(layer.bottom)
        made = 0 if in_place else sum(math.prod(shapes[t]) for t in layer.top)
        peak = max(peak, sum(alive.values()) + made + extra)
        for top in layer.top:
            alive[top] = math.prod(shapes[top])
        for b in [b for b in alive if last_read.get(b, -1) <= k and b not in blobs]:
            del alive[b]
    return peak * FLOAT


def picture_bytes(image_shape: tuple[int, ...], conv1_elements: int) -> int:
    """Memory the pictures `map` draws from a pass take on top of it: the image and its gray
    copy, the full-size best-class overlay (its RGB bytes, the BGR copy PNG encoding makes,
    the PNG), a band of float work, and the conv1 tile sheet with its PNG. A 120 MP photo's
    overlay alone is 1.2 GB of these, whatever the scale of the pass."""
    height, width = image_shape[:2]
    channels = image_shape[2] if len(image_shape) > 2 else 1
    return height * width * (channels + 10) + 48 * BAND_PIXELS + 2 * conv1_elements
