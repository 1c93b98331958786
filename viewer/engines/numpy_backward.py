"""The backward pass beside the numpy forward: Caffe's layer gradients, written by hand in numpy.

Why by hand: the answer must equal real Caffe's `net.backward()` (its argmax tie rule in MAX
pooling and Eltwise, AVE pooling's padded divisor, LRN's window), and no autodiff library
knows those semantics. The forward runs `viewer.engines.ops`, keeping each layer's inputs and
output on a tape; the backward walks the tape from the end, pops the diff of each layer's
tops and adds its bottoms' diffs, so in-place layers (a ReLU over `conv1`) and blobs read by
several layers work without Caffe's Split layers.

`rule` changes only how a ReLU passes the gradient back: `gradient` is the true derivative,
`guided` (Springenberg et al.) passes it where both the input and the gradient are positive,
`deconv` (Zeiler and Fergus) where the gradient is positive, whatever the input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from viewer.caffe.model_io import CaffeNet
from viewer.caffe.proto import caffe_pb2
from viewer.engines import ops
from viewer.errors import ExplainError
from viewer.net import netgraph

RULES = ("gradient", "guided", "deconv")
Grad = Callable[..., list]


@dataclass
class Step:
    """One layer of the forward pass as the backward needs it: what it read and wrote."""

    layer: caffe_pb2.LayerParameter
    bottoms: list[np.ndarray]
    out: np.ndarray


@dataclass
class Tape:
    """A forward pass with every layer's inputs kept; `values` holds each blob's final value."""

    steps: list[Step]
    values: dict[str, np.ndarray] = field(default_factory=dict)


def _scatter(grad: np.ndarray, parts: np.ndarray, stride: tuple[int, int],
             dilation: tuple[int, int], out: tuple[int, int]) -> None:
    """Add the window taps `parts` (N x C x oh x ow x kh x kw) back where the forward's sliding
    view read them, one tap at a time (the taps of neighbouring windows overlap)."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out
    kh, kw = parts.shape[4:6]
    # Windows that do not overlap (LeNet's 2x2 pooling, a convolution with one output) are
    # laid side by side in one assignment instead of one addition per tap.
    sh, sw = (max(sh, kh) if oh == 1 else sh), (max(sw, kw) if ow == 1 else sw)
    if (dh, dw) == (1, 1) and sh >= kh and sw >= kw and grad.shape[2] >= oh * sh and \
            grad.shape[3] >= ow * sw:
        tiles = np.zeros(parts.shape[:2] + (oh, sh, ow, sw), np.float32)
        tiles[:, :, :, :kh, :, :kw] = parts.transpose(0, 1, 2, 4, 3, 5)
        grad[:, :, :oh * sh, :ow * sw] += tiles.reshape(grad.shape[:2] + (oh * sh, ow * sw))
        return
    for a in range(parts.shape[4]):
        for b in range(parts.shape[5]):
            grad[:, :, a * dh:a * dh + sh * (oh - 1) + 1:sh,
                 b * dw:b * dw + sw * (ow - 1) + 1:sw] += parts[..., a, b]


def convolution_grad(x: np.ndarray, dy: np.ndarray, weight: np.ndarray,
                     window: netgraph.Kernel, group: int) -> np.ndarray:
    """The input's gradient of `ops.convolution`: the transposed convolution (col2im)."""
    (ph, pw) = window.pad
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), np.float32)
    cin, cout = c // group, weight.shape[0] // group
    for g in range(group):
        # cin x kh x kw x N x oh x ow: each tap's plane contiguous for the scatter
        taps = np.tensordot(weight[g * cout:(g + 1) * cout], dy[:, g * cout:(g + 1) * cout],
                            axes=((0,), (1,)))
        _scatter(padded[:, g * cin:(g + 1) * cin], taps.transpose(3, 0, 4, 5, 1, 2),
                 window.stride, window.dilation, dy.shape[2:])
    return padded[:, :, ph:ph + h, pw:pw + w]


def pooling_grad(x: np.ndarray, dy: np.ndarray, p: caffe_pb2.PoolingParameter) -> np.ndarray:
    """The input's gradient of `ops.pooling`: MAX sends each diff to the first largest tap in
    row-major order (Caffe keeps the first of equal values), AVE spreads it over the window
    divided as the forward divided."""
    n, c, h, w = x.shape
    win = netgraph.pool_kernel(p, x.shape)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = win.kernel, win.stride, win.pad, win.dilation
    oh, ow = dy.shape[2:]
    (eh, ew) = win.extent
    shape = (n, c, max((oh - 1) * sh + eh, h + ph), max((ow - 1) * sw + ew, w + pw))
    grad = np.zeros(shape, np.float32)
    rows, cols = min(h, shape[2] - ph), min(w, shape[3] - pw)
    if p.pool == caffe_pb2.PoolingParameter.MAX:
        padded = np.full(shape, -np.inf, np.float32)
        padded[:, :, ph:ph + rows, pw:pw + cols] = x[:, :, :rows, :cols]
        view = sliding_window_view(padded, (eh, ew), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
        view = view[:, :, :oh, :ow].reshape(n, c, oh, ow, kh * kw)
        first = view.argmax(axis=4)
        parts = (np.arange(kh * kw) == first[..., None]) * dy[..., None]
    elif p.pool == caffe_pb2.PoolingParameter.AVE:
        divisor = np.outer(ops.taps_inside(oh, sh, ph, kh, dh, h),
                           ops.taps_inside(ow, sw, pw, kw, dw, w))
        parts = np.repeat((dy / divisor)[..., None], kh * kw, axis=4)
    else:
        raise ExplainError("stochastic pooling has no backward at test time")
    _scatter(grad, parts.reshape(n, c, oh, ow, kh, kw).astype(np.float32), (sh, sw),
             (dh, dw), (oh, ow))
    out = np.zeros_like(x)
    out[:, :, :rows, :cols] = grad[:, :, ph:ph + rows, pw:pw + cols]
    return out


def lrn_grad(x: np.ndarray, y: np.ndarray, dy: np.ndarray,
             p: caffe_pb2.LRNParameter) -> np.ndarray:
    """The input's gradient of `ops.lrn`: dy * scale^-beta - 2 alpha beta / n * x *
    sum over the window of (dy * y / scale), across channels or within each channel."""
    half = p.local_size // 2
    x64, y64, dy64 = (a.astype(np.float64) for a in (x, y, dy))
    if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        def window(v):
            return ops.window_sums(v, half, axis=1)
        scale, ratio = p.k + p.alpha / p.local_size * window(x64 ** 2), p.local_size
    else:
        def window(v):
            return ops.window_sums(ops.window_sums(v, half, axis=2), half, axis=3)
        scale, ratio = 1.0 + p.alpha / p.local_size ** 2 * window(x64 ** 2), p.local_size ** 2
    back = dy64 * scale ** -p.beta - 2 * p.alpha * p.beta / ratio * x64 * window(
        dy64 * y64 / scale)
    return back.astype(np.float32)


def eltwise_grad(bottoms: list[np.ndarray], dy: np.ndarray,
                 p: caffe_pb2.EltwiseParameter) -> list[np.ndarray]:
    """Eltwise's gradients: SUM by its coefficients, PROD by the product of the others, MAX to
    the input Caffe picked (of the first two the second on a tie, later ones only if larger)."""
    if p.operation == caffe_pb2.EltwiseParameter.PROD:
        return [dy * np.prod([b for k, b in enumerate(bottoms) if k != i], axis=0)
                for i in range(len(bottoms))]
    if p.operation == caffe_pb2.EltwiseParameter.MAX:
        pick = np.where(bottoms[0] > bottoms[1], 0, 1)
        top = np.maximum(bottoms[0], bottoms[1])
        for k, b in enumerate(bottoms[2:], start=2):
            pick = np.where(b > top, k, pick)
            top = np.maximum(top, b)
        return [dy * (pick == k) for k in range(len(bottoms))]
    coeff = list(p.coeff) or [1.0] * len(bottoms)
    return [np.float32(c) * dy for c in coeff]


def _channels(values: np.ndarray, ndim: int) -> np.ndarray:
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def _relu(layer, x, y, dy, params, rule):
    if rule == "deconv":
        return [dy * (dy > 0)]
    slope = np.float32(layer.relu_param.negative_slope)
    passed = np.where(x > 0, dy, dy * slope)
    return [passed * (dy > 0)] if rule == "guided" else [passed]


def _batch_norm(layer, x, y, dy, params, rule):
    factor = params[2].reshape(-1)[0]
    inverse = np.float32(0) if factor == 0 else np.float32(1) / factor
    std = np.sqrt(params[1] * inverse + np.float32(layer.batch_norm_param.eps))
    return [dy / _channels(std, dy.ndim)]


def _scale(layer, x, y, dy, params, rule):
    factor, axis = params[0], layer.scale_param.axis
    shape = [1] * dy.ndim
    shape[axis:axis + factor.ndim] = factor.shape
    return [dy * factor.reshape(shape)]


def _power(layer, x, y, dy, params, rule):
    p = layer.power_param
    if p.power == 1:
        return [dy * np.float32(p.scale)]
    base = p.shift + p.scale * x.astype(np.float64)
    return [(dy * p.power * p.scale * base ** (p.power - 1)).astype(np.float32)]


def _softmax(layer, x, y, dy, params, rule):
    axis = layer.softmax_param.axis
    return [y * (dy - (dy * y).sum(axis=axis, keepdims=True))]


def _inner_product(layer, x, y, dy, params, rule):
    weight = params[0].T if layer.inner_product_param.transpose else params[0]
    return [(dy.reshape(dy.shape[0], -1) @ weight).reshape(x.shape)]


def _prelu(layer, x, y, dy, params, rule):
    slope = params[0] if params[0].size == 1 else _channels(params[0], x.ndim)
    return [np.where(x > 0, dy, dy * slope)]


def _bnll(layer, x, y, dy, params, rule):
    e = np.exp(np.minimum(x, 50.0))       # Caffe's kBNLL_THRESHOLD
    return [dy * e / (e + 1)]


LAYER_GRADS: dict[str, Grad] = {
    "Convolution": lambda layer, x, y, dy, params, rule: [convolution_grad(
        x, dy, params[0], netgraph.conv_kernel(layer.convolution_param),
        layer.convolution_param.group)],
    "InnerProduct": _inner_product,
    "Pooling": lambda layer, x, y, dy, params, rule: [pooling_grad(x, dy, layer.pooling_param)],
    "ReLU": _relu,
    "PReLU": _prelu,
    "ELU": lambda layer, x, y, dy, params, rule: [
        np.where(x > 0, dy, dy * (y + np.float32(layer.elu_param.alpha)))],
    "Sigmoid": lambda layer, x, y, dy, params, rule: [dy * y * (1 - y)],
    "TanH": lambda layer, x, y, dy, params, rule: [dy * (1 - y * y)],
    "AbsVal": lambda layer, x, y, dy, params, rule: [dy * np.sign(x)],
    "BNLL": _bnll,
    "LRN": lambda layer, x, y, dy, params, rule: [lrn_grad(x, y, dy, layer.lrn_param)],
    "BatchNorm": _batch_norm,
    "Scale": _scale,
    "Power": _power,
    "Softmax": _softmax,
    "Dropout": lambda layer, x, y, dy, params, rule: [dy],
    "Split": lambda layer, x, y, dy, params, rule: [dy],
    "Flatten": lambda layer, x, y, dy, params, rule: [dy.reshape(x.shape)],
}


def _layer_grad(step: Step, dy: np.ndarray, params: list[np.ndarray],
                rule: str) -> list[np.ndarray]:
    layer = step.layer
    if layer.type == "Eltwise":
        return eltwise_grad(step.bottoms, dy, layer.eltwise_param)
    if layer.type == "Concat":
        axis = layer.concat_param.axis
        cuts = np.cumsum([b.shape[axis] for b in step.bottoms])[:-1]
        return np.split(dy, cuts, axis=axis)
    return LAYER_GRADS[layer.type](layer, step.bottoms[0], step.out, dy, params, rule)


def check_backward(net: CaffeNet) -> None:
    """Refuse, naming it, a net with a layer whose backward is not written yet."""
    for layer in netgraph.deploy_layers(net.param):
        if layer.type not in LAYER_GRADS and layer.type not in ("Input", "Eltwise", "Concat"):
            raise ExplainError(f"layer '{layer.name}' ({layer.type}) has no backward pass yet; "
                               "only occlusion can explain this net")


class Backward:
    """The forward and backward passes of one net, in numpy, for gradients of any blob."""

    def __init__(self, net: CaffeNet) -> None:
        check_backward(net)
        self.net = net
        self.layers = [l for l in netgraph.deploy_layers(net.param) if l.type != "Input"]
        self.input_name = next(iter(netgraph.input_shapes(net.param)))
        self.producers = netgraph.producers(net.param)

    def forward(self, data: np.ndarray) -> Tape:
        """Run the net on `data` (N x C x H x W), keeping what the backward needs."""
        values = {self.input_name: np.ascontiguousarray(data, dtype=np.float32)}
        steps = []
        with np.errstate(all="ignore"):
            for layer in self.layers:
                bottoms = [values[b] for b in layer.bottom]
                out = ops.run_layer(layer, bottoms, self.net.weights.get(layer.name, []))
                steps.append(Step(layer, bottoms, out))
                for top in layer.top:
                    values[top] = out
        return Tape(steps, values)

    def backward(self, tape: Tape, seeds: dict[str, np.ndarray], rule: str = "gradient",
                 keep: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """The diffs of the input and of the `keep` blobs (as their final values) given the
        diffs `seeds` of some blobs, as Caffe's backward from those blobs gives them."""
        if rule not in RULES:
            raise ExplainError(f"unknown backward rule '{rule}'; choose one of "
                               f"{', '.join(RULES)}")
        diffs = {name: np.asarray(d, np.float32) for name, d in seeds.items()}
        kept = {}
        for step in reversed(tape.steps):
            layer = step.layer
            for name in keep:
                if self.producers.get(name) is layer and name in diffs:
                    kept[name] = diffs[name].copy()
            tops = [diffs.pop(t) for t in dict.fromkeys(layer.top) if t in diffs]
            if not tops:
                continue            # nothing the seeds depend on comes out of this layer
            dy = tops[0] if len(tops) == 1 else np.sum(tops, axis=0)
            with np.errstate(all="ignore"):
                grads = _layer_grad(step, dy, self.net.weights.get(layer.name, []), rule)
            for name, grad in zip(layer.bottom, grads):
                grad = np.asarray(grad, np.float32)
                diffs[name] = diffs[name] + grad if name in diffs else grad
        kept[self.input_name] = diffs.get(
            self.input_name, np.zeros_like(tape.values[self.input_name]))
        for name in keep:
            kept.setdefault(name, np.zeros_like(tape.values[name]))
        return kept
