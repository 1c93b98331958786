"""Net surgery: cast a classifier's InnerProduct layers into equivalent Convolutions.

Each InnerProduct becomes a Convolution whose kernel is its input blob's spatial size (LeNet's
`ip1` reads a 50x4x4 blob, so `ip1-conv` has 500x50x4x4 weights; the tutorial's 1x1 kernel kept
50 of the 800 inputs and silently dropped the rest). The weights are the same numbers reshaped,
so the fully convolutional net computes the classifier at every window of a larger image.

A global pooling (SqueezeNet, MobileNet) would average a whole larger image into one cell; it
becomes a pooling with the kernel its input had at the classifier's input size, stride 1, which
is the classifier sliding too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.net.weights import check_weights
from viewer.net import netgraph
from viewer.errors import ModelError, SurgeryError
from viewer.caffe.model_io import CaffeNet, structure_of
from viewer.caffe.proto import caffe_pb2

CONV_SUFFIX = "-conv"


@dataclass(frozen=True)
class Conversion:
    """One InnerProduct turned Convolution, with its weight shapes before and after; or, with
    `kind` "Pooling", a global pooling given a fixed kernel (`new_shape`, stride 1)."""

    layer: str
    new_layer: str
    old_shape: tuple[int, ...]
    new_shape: tuple[int, ...]
    kind: str = "InnerProduct"

    def as_dict(self) -> dict:
        if self.kind == "Pooling":
            return {"layer": self.layer, "new_layer": self.new_layer, "type": self.kind,
                    "global_pooling": True, "kernel": list(self.new_shape), "stride": [1, 1]}
        return {"layer": self.layer, "new_layer": self.new_layer, "type": self.kind,
                "old_shape": list(self.old_shape), "new_shape": list(self.new_shape)}


@dataclass
class SurgeryResult:
    """The fully convolutional net and what was converted."""

    net: CaffeNet
    conversions: list[Conversion]


def conversion_text(c: Conversion) -> str:
    """One line for a person: `ip1 500x800 -> ip1-conv 500x50x4x4`, or for a global pooling
    `pool10 global -> pool10 13x13 kernel, stride 1`."""
    if c.kind == "Pooling":
        return (f"{c.layer} global -> {c.new_layer} {c.new_shape[0]}x{c.new_shape[1]} kernel, "
                "stride 1")
    return (f"{c.layer} {'x'.join(map(str, c.old_shape))} -> "
            f"{c.new_layer} {'x'.join(map(str, c.new_shape))}")


def inner_products(param: caffe_pb2.NetParameter) -> list[caffe_pb2.LayerParameter]:
    """The InnerProduct layers of the deploy net, in order."""
    return [l for l in netgraph.deploy_layers(param) if l.type == "InnerProduct"]


def global_poolings(param: caffe_pb2.NetParameter) -> list[caffe_pb2.LayerParameter]:
    """The Pooling layers of the deploy net that pool their whole input, in order."""
    return [l for l in netgraph.deploy_layers(param)
            if l.type == "Pooling" and l.pooling_param.global_pooling]


def is_fully_convolutional(param: caffe_pb2.NetParameter) -> bool:
    """True when the net has no InnerProduct and no global pooling left, so it already slides
    over any input."""
    return not inner_products(param) and not global_poolings(param)


def fix_global_pooling(net: CaffeNet) -> SurgeryResult:
    """Give each global pooling the fixed kernel of its input at the declared input size,
    stride 1 and no pad: at that size nothing changes, and on a larger image the pooling
    slides as the classifier would. `net` itself is not modified."""
    shapes = netgraph.infer_shapes(net.param)
    out = structure_of(net.param)
    fixes = []
    for layer in out.layer:
        if layer.type != "Pooling" or not layer.pooling_param.global_pooling or \
                not netgraph.in_test_phase(layer):
            continue
        kernel = tuple(shapes[layer.bottom[0]][2:4])
        p = layer.pooling_param
        p.ClearField("global_pooling")
        if kernel[0] == kernel[1]:
            p.kernel_size = kernel[0]
        else:
            p.kernel_h, p.kernel_w = kernel
        fixes.append(Conversion(layer.name, layer.name, (), kernel, kind="Pooling"))
    return SurgeryResult(CaffeNet(out, dict(net.weights), source=net.source), fixes)


def _kernel_for(layer: caffe_pb2.LayerParameter, bottom: netgraph.Shape) -> tuple[int, int, int]:
    """(channels, kernel_h, kernel_w) of the Convolution equivalent to an InnerProduct."""
    netgraph.output_shape(layer, [bottom])  # refuses axis != 1 with the layer's name
    if len(bottom) == 4:
        return bottom[1], bottom[2], bottom[3]
    if len(bottom) == 2:
        return bottom[1], 1, 1
    raise SurgeryError(f"InnerProduct '{layer.name}' reads a {len(bottom)}-D blob {bottom}; "
                       "only 2-D and 4-D inputs can become convolutions")


def _spatial_input(param: caffe_pb2.NetParameter, shapes: dict[str, netgraph.Shape],
                   blob: str) -> netgraph.Shape:
    """Shape of an InnerProduct's input before any Flatten, which surgery removes."""
    made_by = netgraph.creators(param)
    while blob in made_by and made_by[blob].type == "Flatten":
        blob = made_by[blob].bottom[0]
    return shapes[blob]


def _conv_weights(layer: caffe_pb2.LayerParameter, weight: np.ndarray,
                  kernel: tuple[int, int, int]) -> np.ndarray:
    matrix = weight.T if layer.inner_product_param.transpose else weight
    return np.ascontiguousarray(matrix.reshape((matrix.shape[0],) + kernel))


def _as_convolution(layer: caffe_pb2.LayerParameter, kernel: tuple[int, int, int],
                    name: str) -> caffe_pb2.LayerParameter:
    ip = layer.inner_product_param
    conv = caffe_pb2.LayerParameter(name=name, type="Convolution")
    conv.bottom.extend(layer.bottom)
    conv.top.extend(layer.top)
    conv.param.extend(layer.param)
    conv.include.extend(layer.include)
    conv.exclude.extend(layer.exclude)
    p = conv.convolution_param
    p.num_output = ip.num_output
    if ip.HasField("bias_term"):
        p.bias_term = ip.bias_term
    p.kernel_h, p.kernel_w = kernel[1], kernel[2]
    if kernel[1] == kernel[2]:
        p.ClearField("kernel_h")
        p.ClearField("kernel_w")
        p.kernel_size.append(kernel[1])
    if ip.HasField("weight_filler"):
        p.weight_filler.CopyFrom(ip.weight_filler)
    if ip.HasField("bias_filler"):
        p.bias_filler.CopyFrom(ip.bias_filler)
    return conv


def _rename(blobs, renamed: dict[str, str]) -> list[str]:
    return [renamed.get(b, b) for b in blobs]


def make_fully_convolutional(net: CaffeNet) -> SurgeryResult:
    """Convert every InnerProduct of `net` into a Convolution, transplanting the weights.

    Layers and blobs named after a converted layer get the `-conv` suffix (`ip1` becomes
    `ip1-conv`), Flatten layers are dropped because convolutions read the spatial blob, global
    poolings get a fixed kernel (`fix_global_pooling`), and all other layers and weights are
    copied. `net` itself is not modified.
    """
    if is_fully_convolutional(net.param):
        raise SurgeryError(f"{net.source} has no InnerProduct layer and no global pooling: "
                           "nothing to convert (it is already fully convolutional)")
    pooled = fix_global_pooling(net)
    converted = _convert_inner_products(pooled.net)
    return SurgeryResult(converted.net, pooled.conversions + converted.conversions)


def _convert_inner_products(net: CaffeNet) -> SurgeryResult:
    """`make_fully_convolutional` for the InnerProduct layers (the whole net when it has none)."""
    shapes = netgraph.infer_shapes(net.param)
    out = structure_of(net.param)
    out.name = f"{net.param.name or 'net'}-fullconv"
    del out.layer[:]
    renamed: dict[str, str] = {}
    weights: dict[str, list[np.ndarray]] = {}
    conversions = []
    for layer in net.param.layer:
        bottoms = _rename(layer.bottom, renamed)
        if layer.type == "Flatten" and netgraph.in_test_phase(layer):
            renamed[layer.top[0]] = bottoms[0]
            continue
        if layer.type == "InnerProduct" and netgraph.in_test_phase(layer):
            kernel = _kernel_for(layer, _spatial_input(net.param, shapes, layer.bottom[0]))
            new_name = layer.name + CONV_SUFFIX
            for top in layer.top:
                if top == layer.name:
                    renamed[top] = new_name
            new = _as_convolution(layer, kernel, new_name)
            old = net.weights[layer.name]
            weights[new_name] = [_conv_weights(layer, old[0], kernel)] + old[1:]
            conversions.append(Conversion(layer.name, new_name, old[0].shape,
                                          weights[new_name][0].shape))
        else:
            new = caffe_pb2.LayerParameter()
            new.CopyFrom(layer)
            del new.blobs[:]
            if layer.name in net.weights:
                weights[layer.name] = net.weights[layer.name]
        del new.bottom[:]
        new.bottom.extend(bottoms)
        tops = _rename(layer.top, renamed)
        del new.top[:]
        new.top.extend(tops)
        if new.type == "Softmax" and new.softmax_param.axis != 1:
            raise SurgeryError(f"Softmax '{layer.name}' uses axis {new.softmax_param.axis}; "
                               "a dense map needs the class axis 1")
        out.layer.append(new)
    fcn = CaffeNet(out, weights, source=f"{net.source} (fully convolutional)")
    check_weights(fcn, None)
    return SurgeryResult(fcn, conversions)


def _match_target(target: caffe_pb2.NetParameter,
                  ip: caffe_pb2.LayerParameter) -> caffe_pb2.LayerParameter:
    """The layer of a user's FCN prototxt that should receive an InnerProduct's weights."""
    by_name = {l.name: l for l in target.layer}
    for name in (ip.name + CONV_SUFFIX, ip.name):
        if name in by_name:
            return by_name[name]
    convs = [l for l in netgraph.deploy_layers(target) if l.type == "Convolution"]
    raise SurgeryError(f"the target prototxt has no layer '{ip.name}{CONV_SUFFIX}' to receive "
                       f"the weights of '{ip.name}' (its convolutions: "
                       f"{', '.join(l.name for l in convs)})")


def transplant(classifier: CaffeNet, target: caffe_pb2.NetParameter,
               source: str = "target prototxt") -> SurgeryResult:
    """The tutorial's workflow: move a classifier's weights into a user-written FCN prototxt.

    Every shape is validated first. In particular a converted layer must have the kernel of
    its input blob: the tutorial's `kernel_size: 1` for `ip1-conv` is refused, not truncated.
    """
    auto = make_fully_convolutional(classifier)
    target = structure_of(target)
    if inner_products(target):
        left = ", ".join(l.name for l in inner_products(target))
        raise SurgeryError(f"{source} still has InnerProduct layers ({left}): it is not "
                           "fully convolutional")
    shapes = netgraph.infer_shapes(classifier.param)
    weights: dict[str, list[np.ndarray]] = {}
    conversions = []
    converted_ips = [c for c in auto.conversions if c.kind == "InnerProduct"]
    for ip, conv in zip(inner_products(classifier.param), converted_ips):
        layer = _match_target(target, ip)
        _check_converted(layer, ip, _spatial_input(classifier.param, shapes, ip.bottom[0]),
                         source)
        weights[layer.name] = auto.net.weights[conv.new_layer]
        conversions.append(Conversion(ip.name, layer.name, conv.old_shape, conv.new_shape))
    converted = {c.new_layer for c in conversions}
    for layer in netgraph.deploy_layers(target):
        if layer.name not in converted and layer.name in classifier.weights:
            weights[layer.name] = classifier.weights[layer.name]
    net = CaffeNet(target, weights, source=source)
    try:
        check_weights(net, f"the weights of {classifier.source}")
    except ModelError as err:
        raise SurgeryError(f"{source} does not fit the classifier: {err}") from None
    return SurgeryResult(net, conversions)


def _check_converted(layer: caffe_pb2.LayerParameter, ip: caffe_pb2.LayerParameter,
                     bottom: netgraph.Shape, source: str) -> None:
    if layer.type != "Convolution":
        raise SurgeryError(f"{source}: layer '{layer.name}' should be a Convolution to receive "
                           f"the weights of '{ip.name}', but it is {layer.type}")
    channels, kh, kw = _kernel_for(ip, bottom)
    p = layer.convolution_param
    window = netgraph.conv_kernel(p)
    if window.kernel != (kh, kw):
        raise SurgeryError(
            f"{source}: layer '{layer.name}' has a {window.kernel[0]}x{window.kernel[1]} kernel, "
            f"but '{ip.name}' reads a {channels}x{kh}x{kw} blob, so the kernel must be {kh}x{kw}, "
            f"not {window.kernel[0]}x{window.kernel[1]} (a smaller kernel would silently drop "
            "weights)")
    if p.num_output != ip.inner_product_param.num_output:
        raise SurgeryError(f"{source}: layer '{layer.name}' has num_output {p.num_output}, but "
                           f"'{ip.name}' has {ip.inner_product_param.num_output}")
    if window.stride != (1, 1) or window.pad != (0, 0) or window.dilation != (1, 1):
        raise SurgeryError(f"{source}: layer '{layer.name}' must have stride 1, no pad and no "
                           "dilation to equal an InnerProduct")
