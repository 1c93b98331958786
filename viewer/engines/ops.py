"""Caffe's layers as numpy functions: the reference arithmetic every engine is checked against.

Written here because no library runs Caffe layer semantics (ceil-rounded pooling with Caffe's
edge clipping, in-place blobs, BatchNorm's scale factor) without Caffe itself. The numpy
engine runs a net with them; the BLAS engine runs the layers it has no fast path for with
them; the maps take their softmax from here.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from viewer.caffe.proto import caffe_pb2
from viewer.net import netgraph


def convolution(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                window: netgraph.Kernel, group: int) -> np.ndarray:
    """Caffe Convolution as im2col + tensordot, with pad, stride, dilation and groups."""
    (ph, pw), (sh, sw), (dh, dw) = window.pad, window.stride, window.dilation
    eh, ew = window.extent
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = sliding_window_view(x, (eh, ew), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    cin = x.shape[1] // group
    cout = weight.shape[0] // group
    parts = [
        np.tensordot(cols[:, g * cin:(g + 1) * cin], weight[g * cout:(g + 1) * cout],
                     axes=((1, 4, 5), (1, 2, 3)))
        for g in range(group)
    ]
    out = np.concatenate(parts, axis=-1).transpose(0, 3, 1, 2)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(out, dtype=np.float32)


def pooling(x: np.ndarray, p: caffe_pb2.PoolingParameter) -> np.ndarray:
    """Caffe Pooling (MAX, AVE) with its ceil rounding and clipped edge windows, and the
    dilated windows of a rarefied net."""
    n, c, h, w = x.shape
    win = netgraph.pool_kernel(p, x.shape)
    ceil = p.round_mode == caffe_pb2.PoolingParameter.CEIL
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = win.kernel, win.stride, win.pad, win.dilation
    (eh, ew) = win.extent
    oh = netgraph.pooled_size(h, eh, sh, ph, ceil)
    ow = netgraph.pooled_size(w, ew, sw, pw, ceil)
    shape = (n, c, (oh - 1) * sh + eh, (ow - 1) * sw + ew)
    if p.pool == caffe_pb2.PoolingParameter.MAX:
        padded = np.full(shape, -np.inf, np.float32)
    else:
        padded = np.zeros(shape, np.float32)
    rows, cols = min(h, padded.shape[2] - ph), min(w, padded.shape[3] - pw)
    padded[:, :, ph:ph + rows, pw:pw + cols] = x[:, :, :rows, :cols]
    view = sliding_window_view(padded, (eh, ew), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    view = view[:, :, :oh, :ow]
    if p.pool == caffe_pb2.PoolingParameter.MAX:
        return view.max(axis=(4, 5))
    if p.pool != caffe_pb2.PoolingParameter.AVE:
        raise ValueError("stochastic pooling runs only in training")
    # Caffe divides by the taps inside the padded image (the pad counts, the overhang not).
    return view.sum(axis=(4, 5)) / np.outer(taps_inside(oh, sh, ph, kh, dh, h),
                                            taps_inside(ow, sw, pw, kw, dw, w))


def taps_inside(out: int, stride: int, pad: int, kernel: int, dilation: int,
                 size: int) -> np.ndarray:
    """Per output position, how many window taps fall before the end of the padded input."""
    starts = np.arange(out) * stride - pad
    return np.minimum(kernel, -(-(size + pad - starts) // dilation)).astype(np.float32)


def softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """Numerically stable softmax along `axis`."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def window_sums(values: np.ndarray, half: int, axis: int) -> np.ndarray:
    """Sums over the windows [i - half, i + half] (clipped to the array) along `axis`, in
    float64, from one cumulative sum: the cost does not grow with the window (Caffe accepts
    any odd LRN size; a 40001-wide window summed directly never ends)."""
    size = values.shape[axis]
    pad = [(0, 0)] * values.ndim
    pad[axis] = (1, 0)
    prefix = np.pad(np.cumsum(values, axis=axis, dtype=np.float64), pad)
    index = np.arange(size)
    return (np.take(prefix, np.minimum(index + half + 1, size), axis=axis)
            - np.take(prefix, np.maximum(index - half, 0), axis=axis))


def lrn(x: np.ndarray, p: caffe_pb2.LRNParameter) -> np.ndarray:
    """Caffe local response normalisation, across channels or within each channel.

    Within a channel Caffe averages the squares over a size x size window padded with zeros
    (AVE pooling with pad (size-1)/2, so the divisor is always size^2) and uses 1, not k, as
    the constant. Each plane is summed alone, to keep the float64 sums small.
    """
    half = p.local_size // 2
    if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        total = window_sums(x.astype(np.float64) ** 2, half, axis=1)
        scale = p.k + p.alpha / p.local_size * total
    else:
        scale = np.empty(x.shape, np.float64)
        for n, c in np.ndindex(*x.shape[:2]):
            plane = x[n, c].astype(np.float64) ** 2
            total = window_sums(window_sums(plane, half, axis=0), half, axis=1)
            scale[n, c] = 1.0 + p.alpha / p.local_size ** 2 * total
    return (x / scale ** p.beta).astype(np.float32)


def run_layer(layer: caffe_pb2.LayerParameter, bottoms: list[np.ndarray],
              params: list[np.ndarray]) -> np.ndarray:
    """One layer's forward pass in the TEST phase."""
    x = bottoms[0]
    kind = layer.type
    if kind == "Convolution":
        p = layer.convolution_param
        bias = params[1] if p.bias_term else None
        return convolution(x, params[0], bias, netgraph.conv_kernel(p), p.group)
    if kind == "InnerProduct":
        p = layer.inner_product_param
        weight = params[0].T if p.transpose else params[0]
        out = x.reshape(x.shape[0], -1) @ weight.T
        return out + params[1] if p.bias_term else out
    if kind == "Pooling":
        return pooling(x, layer.pooling_param)
    if kind == "ReLU":
        slope = layer.relu_param.negative_slope
        return np.where(x > 0, x, x * slope).astype(np.float32)
    if kind == "Softmax":
        return softmax(x, layer.softmax_param.axis)
    if kind == "Power":
        p = layer.power_param
        return ((p.shift + p.scale * x) ** p.power).astype(np.float32)
    if kind == "Scale":
        return _scale(x, layer.scale_param, params)
    if kind == "LRN":
        return lrn(x, layer.lrn_param)
    if kind == "Concat":
        return np.concatenate(bottoms, axis=layer.concat_param.axis)
    if kind == "Flatten":
        return x.reshape(netgraph.output_shape(layer, [x.shape]))
    if kind == "BatchNorm":
        return batch_norm(x, layer.batch_norm_param, params)
    if kind == "Eltwise":
        return eltwise(bottoms, layer.eltwise_param)
    if kind in ACTIVATIONS:
        return ACTIVATIONS[kind](layer, x, params).astype(np.float32)
    return x  # Dropout and Split pass data through at test time


def _channels(values: np.ndarray, ndim: int) -> np.ndarray:
    """Per-channel values shaped to broadcast over an N x C x ... blob."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm(x: np.ndarray, p: caffe_pb2.BatchNormParameter,
               params: list[np.ndarray]) -> np.ndarray:
    """Caffe BatchNorm with its stored statistics: the blobs hold sums weighted by the moving-
    average factor s (third blob), so mean and variance are blob / s, and s = 0 means 0."""
    factor = params[2].reshape(-1)[0]
    inverse = np.float32(0) if factor == 0 else np.float32(1) / factor
    mean = params[0] * inverse
    std = np.sqrt(params[1] * inverse + np.float32(p.eps))
    return ((x - _channels(mean, x.ndim)) / _channels(std, x.ndim)).astype(np.float32)


def eltwise(bottoms: list[np.ndarray], p: caffe_pb2.EltwiseParameter) -> np.ndarray:
    """Caffe Eltwise: SUM (with one coefficient per input when given), PROD or MAX."""
    if p.operation == caffe_pb2.EltwiseParameter.PROD:
        return np.prod(bottoms, axis=0, dtype=np.float32)
    if p.operation == caffe_pb2.EltwiseParameter.MAX:
        return np.max(bottoms, axis=0)
    coeff = list(p.coeff) or [1.0] * len(bottoms)
    out = np.zeros_like(bottoms[0])
    for c, b in zip(coeff, bottoms):
        out += np.float32(c) * b
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflowing exp for large negative x."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _bnll(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), written as Caffe does so that large |x| neither overflows nor cancels."""
    return np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(-np.abs(x))))


ACTIVATIONS = {
    "Sigmoid": lambda layer, x, params: _sigmoid(x),
    "TanH": lambda layer, x, params: np.tanh(x),
    "AbsVal": lambda layer, x, params: np.abs(x),
    "BNLL": lambda layer, x, params: _bnll(x),
    "ELU": lambda layer, x, params: np.where(
        x > 0, x, np.float32(layer.elu_param.alpha) * np.expm1(np.minimum(x, 0))),
    "PReLU": lambda layer, x, params: np.where(
        x > 0, x, x * (params[0] if params[0].size == 1 else _channels(params[0], x.ndim))),
}


def _scale(x: np.ndarray, p: caffe_pb2.ScaleParameter, params: list[np.ndarray]) -> np.ndarray:
    factor = params[0]
    shape = [1] * x.ndim
    shape[p.axis:p.axis + factor.ndim] = factor.shape
    out = x * factor.reshape(shape)
    return out + params[1].reshape(shape) if p.bias_term else out
