"""A Caffe deploy net as an ONNX graph: every layer the engines run, as onnxruntime computes it.

Blob names survive the conversion: every Caffe blob is an ONNX tensor of the same name, and a
blob written in place (ReLU `relu1` over `ip1-conv`) gets the name on its *last* write, the
earlier versions being renamed `name@0`, `name@1`... (ONNX values are written once). Height and
width are symbolic, so one session serves every scale.

Caffe's pooling rounds the output size up, drops a last window that would start in the pad,
and clips windows to the data; AVE divides by the window clipped to the padded image (the pad
counts, the rounding overhang does not). onnxruntime's pooling with `ceil_mode=1` and
`count_include_pad=1` does exactly that; tests/test_engines.py checks it at odd sizes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from viewer.caffe.model_io import CaffeNet
from viewer.caffe.proto import caffe_pb2
from viewer.errors import EngineError
from viewer.net import netgraph

OPSET = 17


class _GraphBuilder:
    """Collects ONNX nodes and initializers while tracking each blob's current tensor name."""

    def __init__(self, net: CaffeNet) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.net = net
        self.nodes = []
        self.initializers = []
        self.current: dict[str, str] = {}
        self.writes_left: dict[str, int] = {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}#{self._count}"

    def const(self, hint: str, array: np.ndarray) -> str:
        name = self.fresh(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, hint: str = "t",
             **attrs) -> str:
        output = output or self.fresh(hint)
        self.nodes.append(self.helper.make_node(op, inputs, [output], **attrs))
        return output

    def write(self, blob: str) -> str:
        """The tensor name for the next write of `blob`: the blob's own name on its last write."""
        self.writes_left[blob] -= 1
        name = blob if self.writes_left[blob] == 0 else f"{blob}@{self.writes_left[blob]}"
        self.current[blob] = name
        return name


def _convert_layer(g: _GraphBuilder, layer: caffe_pb2.LayerParameter,
                   shapes: dict[str, netgraph.Shape]) -> None:
    """Append the ONNX nodes computing one Caffe layer."""
    kind = layer.type
    x = g.current[layer.bottom[0]] if layer.bottom else None
    params = g.net.weights.get(layer.name, [])
    rank = len(shapes[layer.bottom[0]]) if layer.bottom else 4

    if kind in ("Dropout", "Split"):
        for top in layer.top:
            g.node("Identity", [x], g.write(top))
        return
    top = layer.top[0]
    if kind == "Convolution":
        p = layer.convolution_param
        w = netgraph.conv_kernel(p)
        inputs = [x, g.const(f"{layer.name}.w", params[0])]
        if p.bias_term:
            inputs.append(g.const(f"{layer.name}.b", params[1]))
        g.node("Conv", inputs, g.write(top), kernel_shape=list(w.kernel),
               strides=list(w.stride), pads=[w.pad[0], w.pad[1], w.pad[0], w.pad[1]],
               dilations=list(w.dilation), group=p.group)
    elif kind == "Pooling":
        _convert_pooling(g, layer, x, shapes[layer.bottom[0]])
    elif kind == "InnerProduct":
        p = layer.inner_product_param
        flat = g.node("Flatten", [x], hint=f"{layer.name}.flat", axis=1)
        inputs = [flat, g.const(f"{layer.name}.w", params[0])]
        if p.bias_term:
            inputs.append(g.const(f"{layer.name}.b", params[1]))
        g.node("Gemm", inputs, g.write(top), transB=0 if p.transpose else 1)
    elif kind == "ReLU":
        slope = layer.relu_param.negative_slope
        if slope:
            g.node("LeakyRelu", [x], g.write(top), alpha=float(slope))
        else:
            g.node("Relu", [x], g.write(top))
    elif kind == "Softmax":
        g.node("Softmax", [x], g.write(top), axis=layer.softmax_param.axis)
    elif kind == "Power":
        p = layer.power_param
        y = x
        if p.scale != 1:
            y = g.node("Mul", [y, g.const("scale", np.float32(p.scale))], hint=layer.name)
        if p.shift != 0:
            y = g.node("Add", [y, g.const("shift", np.float32(p.shift))], hint=layer.name)
        if p.power != 1:
            y = g.node("Pow", [y, g.const("power", np.float32(p.power))], hint=layer.name)
        g.node("Identity", [y], g.write(top))
    elif kind == "Scale":
        p = layer.scale_param
        factor = params[0]
        trailing = rank - p.axis - factor.ndim
        shape = factor.shape + (1,) * trailing
        y = g.node("Mul", [x, g.const(f"{layer.name}.s", factor.reshape(shape))],
                   hint=layer.name)
        if p.bias_term:
            y = g.node("Add", [y, g.const(f"{layer.name}.b", params[1].reshape(shape))],
                       hint=layer.name)
        g.node("Identity", [y], g.write(top))
    elif kind == "LRN":
        _convert_lrn(g, layer, x, shapes[layer.bottom[0]][1])
    elif kind == "Concat":
        g.node("Concat", [g.current[b] for b in layer.bottom], g.write(top),
               axis=layer.concat_param.axis)
    elif kind == "Flatten":
        _convert_flatten(g, layer, x, rank)
    elif kind == "BatchNorm":
        _convert_batch_norm(g, layer, x)
    elif kind == "Eltwise":
        _convert_eltwise(g, layer)
    elif kind in _ACTIVATIONS:
        _ACTIVATIONS[kind](g, layer, x, rank)
    else:
        raise EngineError(f"the onnx engine cannot convert layer '{layer.name}' ({kind})")


def _convert_batch_norm(g: _GraphBuilder, layer: caffe_pb2.LayerParameter, x: str) -> None:
    """Caffe's stored statistics (blob / moving-average factor) as ONNX BatchNormalization,
    which onnxruntime folds into the convolution before it."""
    mean, var, factor = g.net.weights[layer.name]
    s = factor.reshape(-1)[0]
    inverse = np.float32(0) if s == 0 else np.float32(1) / s
    ones = np.ones(mean.shape, np.float32)
    inputs = [x, g.const(f"{layer.name}.one", ones), g.const(f"{layer.name}.zero", 0 * ones),
              g.const(f"{layer.name}.mean", mean * inverse),
              g.const(f"{layer.name}.var", var * inverse)]
    g.node("BatchNormalization", inputs, g.write(layer.top[0]),
           epsilon=float(layer.batch_norm_param.eps))


def _convert_eltwise(g: _GraphBuilder, layer: caffe_pb2.LayerParameter) -> None:
    p = layer.eltwise_param
    inputs = [g.current[b] for b in layer.bottom]
    if p.operation == caffe_pb2.EltwiseParameter.PROD:
        op = "Mul"
    elif p.operation == caffe_pb2.EltwiseParameter.MAX:
        op = "Max"
    else:
        op = "Add"
        if len(p.coeff) and any(c != 1 for c in p.coeff):
            inputs = [g.node("Mul", [x, g.const("coeff", np.float32(c))], hint=layer.name)
                      for x, c in zip(inputs, p.coeff)]
    out = inputs[0]
    for x in inputs[1:-1]:
        out = g.node(op, [out, x], hint=layer.name)
    g.node(op, [out, inputs[-1]], g.write(layer.top[0]))  # netgraph: at least two inputs


def _prelu(g: _GraphBuilder, layer: caffe_pb2.LayerParameter, x: str, rank: int) -> None:
    slope = g.net.weights[layer.name][0]
    shape = (1,) if slope.size == 1 else slope.shape + (1,) * (rank - 2)
    g.node("PRelu", [x, g.const(f"{layer.name}.slope", slope.reshape(shape))],
           g.write(layer.top[0]))


def _unary(op: str, **attrs):
    def convert(g: _GraphBuilder, layer: caffe_pb2.LayerParameter, x: str, rank: int) -> None:
        g.node(op, [x], g.write(layer.top[0]), **{k: f(layer) for k, f in attrs.items()})
    return convert


_ACTIVATIONS = {
    "Sigmoid": _unary("Sigmoid"),
    "TanH": _unary("Tanh"),
    "AbsVal": _unary("Abs"),
    "BNLL": _unary("Softplus"),
    "ELU": _unary("Elu", alpha=lambda layer: float(layer.elu_param.alpha)),
    "PReLU": _prelu,
}


def _convert_flatten(g: _GraphBuilder, layer: caffe_pb2.LayerParameter, x: str,
                     rank: int) -> None:
    """Caffe Flatten merges axes `axis..end_axis`; the merged size is computed at run time."""
    p = layer.flatten_param
    axis, end = p.axis % rank, p.end_axis % rank
    top = layer.top[0]
    if axis == 1 and end == rank - 1:
        g.node("Flatten", [x], g.write(top), axis=1)
        return
    shape = g.node("Shape", [x], hint=f"{layer.name}.shape")

    def dims(start: int, stop: int) -> str:
        return g.node("Slice", [shape, g.const("start", np.array([start], np.int64)),
                                g.const("stop", np.array([stop], np.int64))],
                      hint=f"{layer.name}.dims")

    merged = g.node("ReduceProd", [dims(axis, end + 1)], hint=f"{layer.name}.merged",
                    keepdims=1)
    parts = [dims(0, axis), merged, dims(end + 1, rank)] if axis else [merged,
                                                                      dims(end + 1, rank)]
    target = g.node("Concat", parts, hint=f"{layer.name}.target", axis=0)
    g.node("Reshape", [x, target], g.write(top))


def _convert_pooling(g: _GraphBuilder, layer: caffe_pb2.LayerParameter, x: str,
                     bottom: netgraph.Shape) -> None:
    p = layer.pooling_param
    top = layer.top[0]
    if p.global_pooling:
        op = "GlobalMaxPool" if p.pool == caffe_pb2.PoolingParameter.MAX else "GlobalAveragePool"
        g.node(op, [x], g.write(top))
        return
    w = netgraph.pool_kernel(p, bottom)
    ceil = int(p.round_mode == caffe_pb2.PoolingParameter.CEIL)
    (ph, pw) = w.pad
    attrs = dict(kernel_shape=list(w.kernel), strides=list(w.stride), ceil_mode=ceil)
    if w.dilation != (1, 1):
        attrs["dilations"] = list(w.dilation)
    if p.pool == caffe_pb2.PoolingParameter.MAX and w.dilation != (1, 1) and (ph or pw):
        # onnxruntime wants pads below the kernel size, not its dilated extent: pad first.
        pads = g.const("pads", np.array([0, 0, ph, pw, 0, 0, ph, pw], np.int64))
        padded = g.node("Pad", [x, pads, g.const("low", np.float32(-np.inf))],
                        hint=f"{layer.name}.pad", mode="constant")
        g.node("MaxPool", [padded], g.write(top), **attrs)
    elif p.pool == caffe_pb2.PoolingParameter.MAX:
        g.node("MaxPool", [x], g.write(top), pads=[ph, pw, ph, pw], **attrs)
    elif p.pool == caffe_pb2.PoolingParameter.AVE and w.dilation != (1, 1):
        _dilated_average(g, layer, x, w, bottom[1])
    elif p.pool == caffe_pb2.PoolingParameter.AVE:
        g.node("AveragePool", [x], g.write(top), pads=[ph, pw, ph, pw], count_include_pad=1,
               **attrs)
    else:
        raise EngineError(f"pooling layer '{layer.name}': stochastic pooling runs only in "
                          "training")


def _dilated_average(g: _GraphBuilder, layer: caffe_pb2.LayerParameter, x: str,
                     w: netgraph.Kernel, channels: int) -> None:
    """AVE pooling with a dilated window (rarefied nets) as a per-channel Conv of weights
    1 / taps: AveragePool has dilations only from opset 19. At stride 1 every window lies
    within the padded input, so Caffe's divisor is the whole window; strided ones are refused."""
    if w.stride != (1, 1):
        raise EngineError(f"the onnx engine runs a dilated AVE pooling ('{layer.name}') only "
                          "at stride 1")
    (ph, pw), taps = w.pad, w.kernel[0] * w.kernel[1]
    weight = np.full((channels, 1) + w.kernel, 1.0 / taps, np.float32)
    g.node("Conv", [x, g.const(f"{layer.name}.ave", weight)], g.write(layer.top[0]),
           kernel_shape=list(w.kernel), strides=[1, 1], pads=[ph, pw, ph, pw],
           dilations=list(w.dilation), group=channels)


def _convert_lrn(g: _GraphBuilder, layer: caffe_pb2.LayerParameter, x: str,
                 channels: int) -> None:
    """Caffe LRN: x / (k + alpha * mean of the squares over the window) ** beta.

    Across channels the windowed sum is a 1x1 convolution of the squares with a band of
    alpha / local_size (and k as its bias), which MLAS runs as one GEMM: onnxruntime's own LRN
    took 37% of GoogLeNet's pass (bench/zoo.py). Within a channel Caffe averages over a padded
    square window (the pad counts) and uses 1 as the constant term."""
    p = layer.lrn_param
    half = p.local_size // 2
    sq = g.node("Mul", [x, x], hint=f"{layer.name}.sq")
    if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        offsets = np.subtract.outer(np.arange(channels), np.arange(channels))
        band = np.where(np.abs(offsets) <= half, np.float32(p.alpha / p.local_size),
                        np.float32(0)).astype(np.float32)[:, :, None, None]
        base = g.node("Conv", [sq, g.const(f"{layer.name}.band", band),
                               g.const(f"{layer.name}.k", np.full(channels, p.k, np.float32))],
                      hint=f"{layer.name}.base", kernel_shape=[1, 1])
    else:
        # The window sums come from an integral image (float64, so the differences stay
        # exact): their cost does not grow with local_size (a 2001 x 2001 AveragePool took
        # minutes).
        mean = g.node("Div", [_window_sums_2d(g, layer, sq),
                              g.const("area", np.float32(p.local_size ** 2))], hint=layer.name)
        scaled = g.node("Mul", [mean, g.const("alpha", np.float32(p.alpha))], hint=layer.name)
        base = g.node("Add", [scaled, g.const("one", np.float32(1.0))], hint=layer.name)
    g.node("Div", [x, _power(g, layer.name, base, p.beta)], g.write(layer.top[0]))


def _power(g: _GraphBuilder, hint: str, base: str, beta: float) -> str:
    """base ** beta; the zoo's 0.75 as sqrt(b) * sqrt(sqrt(b)), which onnxruntime vectorises
    (its Pow took 10% of GoogLeNet's pass)."""
    if beta == 0.75:
        root = g.node("Sqrt", [base], hint=hint)
        return g.node("Mul", [root, g.node("Sqrt", [root], hint=hint)], hint=hint)
    return g.node("Pow", [base, g.const("beta", np.float32(beta))], hint=hint)


def _window_sums_2d(g: _GraphBuilder, layer: caffe_pb2.LayerParameter, sq: str) -> str:
    """Sums of `sq` over the size x size windows centred on each cell (zeros outside): padded
    by half + 1 before and half after, summed cumulatively along both axes; a window's sum is
    then four corners of that integral image, k = size apart."""
    k = layer.lrn_param.local_size
    half = k // 2
    name = layer.name
    wide = g.node("Cast", [sq], hint=f"{name}.f64", to=11)           # DOUBLE
    pads = g.const("pads", np.array([0, 0, half + 1, half + 1, 0, 0, half, half], np.int64))
    padded = g.node("Pad", [wide, pads], hint=f"{name}.pad", mode="constant")
    rows = g.node("CumSum", [padded, g.const("axis", np.int64(2))], hint=f"{name}.rows")
    table = g.node("CumSum", [rows, g.const("axis", np.int64(3))], hint=f"{name}.table")

    def corner(y: bool, x_: bool) -> str:
        """The table from k on (True) or up to k before its end (False) along y and x."""
        starts = [k if y else 0, k if x_ else 0]
        ends = [np.iinfo(np.int64).max if y else -k, np.iinfo(np.int64).max if x_ else -k]
        return g.node("Slice", [table, g.const("starts", np.array(starts, np.int64)),
                                g.const("ends", np.array(ends, np.int64)),
                                g.const("axes", np.array([2, 3], np.int64))],
                      hint=f"{name}.corner")

    total = g.node("Sub", [g.node("Add", [corner(True, True), corner(False, False)]),
                           g.node("Add", [corner(True, False), corner(False, True)])],
                   hint=f"{name}.sums")
    return g.node("Cast", [total], hint=f"{name}.f32", to=1)           # FLOAT


def to_onnx(net: CaffeNet, outputs: Sequence[str]):
    """The deploy net as an `onnx.ModelProto` whose graph outputs are the blobs `outputs`.

    The input keeps its declared batch and channels; height and width are symbolic (`H`, `W`).
    """
    import onnx
    from onnx import TensorProto, helper

    g = _GraphBuilder(net)
    shapes = netgraph.infer_shapes(net.param)
    (input_name, input_shape), = netgraph.input_shapes(net.param).items()
    layers = [l for l in netgraph.deploy_layers(net.param) if l.type != "Input"]
    for layer in layers:
        for top in layer.top:
            g.writes_left[top] = g.writes_left.get(top, 0) + 1
    # A layer rewriting the input in place (ReLU on `data`) gets the name: SSA form.
    source = f"{input_name}@input" if input_name in g.writes_left else input_name
    g.current[input_name] = source
    for layer in layers:
        _convert_layer(g, layer, shapes)
    dims = ["N", input_shape[1], "H", "W"] if len(input_shape) == 4 else ["N", *input_shape[1:]]
    graph = helper.make_graph(
        g.nodes, net.name or "net",
        [helper.make_tensor_value_info(source, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(b, TensorProto.FLOAT, [None] * len(shapes[b]))
         for b in outputs],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="netsurgery-viewer")
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model
