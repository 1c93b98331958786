"""The BLAS engine's kernels: planes, banded im2col products with fused pointwise layers, pooling.

Activations are stored channel-major as *planes* `(C, N, rows, pitch)` whose valid part is
the top-left `h x w` of each image. A stride-1 convolution then reads, for kernel tap
`(ky, kx)`, the flat plane shifted by `ky * pitch + kx`: im2col is one contiguous copy per tap
and channel block, and the output keeps the input's pitch. Products are computed in bands of
output positions, with the bias, in-place layers (ReLU) and a following 1x1 convolution
applied to the band while it is in cache. `viewer.engines.blas_engine` plans a net onto them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer import progress
from viewer.caffe.proto import caffe_pb2
from viewer.engines import ops
from viewer.net import netgraph

# Bytes of im2col block and fused intermediates per band of a convolution's product. Few large
# products beat many small ones on a busy machine (every product synchronises BLAS's threads),
# and the budget bounds memory on large photos.
BAND_BYTES = 48 * 1024 ** 2
MIN_BAND = 2048
POINTWISE = {"ReLU", "Power", "Dropout"}
# Operations a byte moved is worth, for progress: LeNet at 4000x3000, scale 1.2, spends 13%
# of the pass in conv1 (1.5% of the products) and 53% in ip1+ip2 (78%); 100 gives 9%/50%.
BYTE_WORK = 100


@dataclass
class Planes:
    """A 4-D blob stored channel-major, `a[c, n, y, x]`, valid where `y < h` and `x < w`."""

    a: np.ndarray
    h: int
    w: int

    @classmethod
    def from_nchw(cls, x: np.ndarray) -> "Planes":
        return cls(np.ascontiguousarray(x.transpose(1, 0, 2, 3)), x.shape[2], x.shape[3])

    def nchw(self) -> np.ndarray:
        """The blob as an N x C x H x W view (no copy: a 1 GB blob is not held twice)."""
        return self.a[:, :, :self.h, :self.w].transpose(1, 0, 2, 3)

    def flat(self) -> np.ndarray:
        """Each channel as one row over the whole batch: (C, N * rows * pitch)."""
        return self.a.reshape(self.a.shape[0], -1)


def as_nchw(value) -> np.ndarray:
    return value.nchw() if isinstance(value, Planes) else value


def wrap(array: np.ndarray):
    return Planes.from_nchw(array) if array.ndim == 4 else array


def apply_pointwise(layer: caffe_pb2.LayerParameter, x: np.ndarray) -> None:
    """Apply ReLU / Power / Dropout to `x` in place (Caffe's TEST-phase arithmetic)."""
    if layer.type == "ReLU":
        slope = layer.relu_param.negative_slope
        if slope:
            np.multiply(x, np.where(x > 0, np.float32(1), np.float32(slope)), out=x)
        else:
            np.maximum(x, 0, out=x)
    elif layer.type == "Power":
        p = layer.power_param
        if p.scale != 1:
            np.multiply(x, np.float32(p.scale), out=x)
        if p.shift != 0:
            np.add(x, np.float32(p.shift), out=x)
        if p.power != 1:
            with np.errstate(all="ignore"):  # the columns past the valid width may go NaN
                np.power(x, np.float32(p.power), out=x)


@dataclass
class Conv:
    """One convolution's matrices: weights as (groups, cout, cin * taps), bias as a column."""

    layer: caffe_pb2.LayerParameter
    window: netgraph.Kernel
    group: int
    weight: np.ndarray
    bias: np.ndarray | None
    after: list[caffe_pb2.LayerParameter] = field(default_factory=list)

    @classmethod
    def of(cls, layer: caffe_pb2.LayerParameter, params: list[np.ndarray]) -> "Conv":
        p = layer.convolution_param
        w = params[0]
        weight = np.ascontiguousarray(w.reshape(p.group, w.shape[0] // p.group, -1))
        bias = params[1].reshape(-1, 1).astype(np.float32) if p.bias_term else None
        return cls(layer, netgraph.conv_kernel(p), p.group, weight, bias)

    @property
    def is_pointwise(self) -> bool:
        w = self.window
        return (w.kernel == (1, 1) and w.stride == (1, 1) and w.pad == (0, 0)
                and self.group == 1)

    def finish(self, out: np.ndarray) -> None:
        """Bias and the in-place layers after this convolution, on an output band."""
        if self.bias is not None:
            out += self.bias
        for layer in self.after:
            apply_pointwise(layer, out)


@dataclass
class Step:
    """A layer to run, or a chain of convolutions fused band by band."""

    layer: caffe_pb2.LayerParameter
    chain: list[Conv] = field(default_factory=list)
    pool: caffe_pb2.LayerParameter | None = None  # a pooling fed band by band by the chain

    @property
    def top(self) -> str:
        last = self.pool or (self.chain[-1].layer if self.chain else self.layer)
        return last.top[0]


def pad_planes(x: Planes, ph: int, pw: int) -> Planes:
    c, n = x.a.shape[:2]
    out = np.zeros((c, n, x.h + 2 * ph, x.w + 2 * pw), np.float32)
    out[:, :, ph:ph + x.h, pw:pw + x.w] = x.a[:, :, :x.h, :x.w]
    return Planes(out, x.h + 2 * ph, x.w + 2 * pw)


def band_size(depth: int, chain: list[Conv], budget: int = BAND_BYTES) -> int:
    """Output positions per band: as many as the scratch budget allows."""
    rows = depth + sum(c.weight.shape[0] * c.weight.shape[1] for c in chain[:-1])
    return max(MIN_BAND, budget // (4 * max(1, rows)))


@dataclass
class _Shifted:
    """A stride-1 convolution chain laid over one input's planes: taps, scratch and sizes."""

    chain: list[Conv]
    src: np.ndarray
    offsets: list[int]
    band: int
    cols: np.ndarray | None
    temps: list[np.ndarray]

    @classmethod
    def over(cls, x: Planes, chain: list[Conv], budget: int, positions: int) -> "_Shifted":
        first = chain[0]
        (dh, dw), (kh, kw) = first.window.dilation, first.window.kernel
        pitch = x.a.shape[3]
        offsets = [ky * dh * pitch + kx * dw for ky in range(kh) for kx in range(kw)]
        depth = first.weight.shape[2]
        pointwise = offsets == [0]
        band = min(positions, band_size(0 if pointwise else depth, chain, budget))
        cols = None if pointwise else np.empty((depth, band), np.float32)
        temps = [np.empty((cv.weight.shape[0] * cv.weight.shape[1], band), np.float32)
                 for cv in chain[:-1]]
        return cls(chain, x.flat(), offsets, band, cols, temps)

    def compute(self, r0: int, r1: int, dst: np.ndarray) -> None:
        """Outputs at flat positions [r0, r1) into `dst` (channels x (r1 - r0)), by bands."""
        first = self.chain[0]
        groups, cout, _ = first.weight.shape
        cin = self.src.shape[0] // groups
        for b0 in range(r0, r1, self.band):
            b1 = min(r1, b0 + self.band)
            m = b1 - b0
            out = dst[:, b0 - r0:b1 - r0]
            target = self.temps[0][:, :m] if self.temps else out
            for g in range(groups):
                rows = slice(g * cin, (g + 1) * cin)
                if self.cols is None:
                    block = self.src[rows, b0:b1]
                else:
                    block = self.cols[:, :m]
                    taps = block.reshape(cin, len(self.offsets), m)
                    for k, off in enumerate(self.offsets):
                        taps[:, k, :] = self.src[rows, b0 + off:b1 + off]
                np.matmul(first.weight[g], block, out=target[g * cout:(g + 1) * cout])
            first.finish(target)
            for k, conv in enumerate(self.chain[1:], start=1):
                nxt = self.temps[k][:, :m] if k < len(self.temps) else out
                np.matmul(conv.weight[0], target, out=nxt)
                conv.finish(nxt)
                target = nxt
            progress.report((b1 - r0) / (r1 - r0))


def _out_channels(chain: list[Conv]) -> int:
    return chain[-1].weight.shape[0] * chain[-1].weight.shape[1]


def _convolve_shifted(x: Planes, chain: list[Conv], budget: int) -> Planes:
    """A stride-1 convolution (then any fused 1x1 ones) as banded im2col + SGEMM on the pitch."""
    eh, ew = chain[0].window.extent
    c, n, rows, pitch = x.a.shape
    oh, ow = x.h - eh + 1, x.w - ew + 1
    # The last valid output sits here; every later position would read past the data.
    total = (n - 1) * rows * pitch + (oh - 1) * pitch + ow
    out = np.empty((_out_channels(chain), n, rows, pitch), np.float32)
    dst = out.reshape(out.shape[0], -1)
    dst[:, total:] = 0
    _Shifted.over(x, chain, budget, total).compute(0, total, dst)
    return Planes(out, oh, ow)


def convolve_pooled(x: Planes, chain: list[Conv], p: caffe_pb2.PoolingParameter,
                     budget: int) -> Planes:
    """A stride-1 convolution of one image straight into its pooling, a band of rows at a
    time: the convolution's output never exists whole."""
    eh, ew = chain[0].window.extent
    c, n, rows, pitch = x.a.shape
    oh, ow = x.h - eh + 1, x.w - ew + 1
    out, win = _pool_output(_out_channels(chain), n, oh, ow, p)
    (kh, _), (sh, _), (ph, _) = win.extent, win.stride, win.pad
    shifted = _Shifted.over(x, chain, budget, oh * pitch)
    per_band = max(1, (shifted.band // pitch - kh) // sh + 1)
    height = min(oh, (per_band - 1) * sh + kh)
    conv = np.empty((out.shape[0], 1, height, pitch), np.float32)
    for py0 in range(0, out.shape[2], per_band):
        py1 = min(out.shape[2], py0 + per_band)
        y0, y1 = max(0, py0 * sh - ph), min(oh, (py1 - 1) * sh - ph + kh)
        r1 = (y1 - 1 - y0) * pitch + ow
        flat = conv.reshape(conv.shape[0], -1)
        with progress.part(py0 / out.shape[2], py1 / out.shape[2]):
            shifted.compute(y0 * pitch, y0 * pitch + r1, flat[:, :r1])
        _pool_rows(Planes(conv[:, :, :y1 - y0], y1 - y0, ow), p, win, out, (py0, py1), y0, oh)
    _average(out, p, win, oh, ow)
    return Planes(out, out.shape[2], out.shape[3])


def _convolve_strided(x: Planes, conv: Conv) -> Planes:
    """Any other convolution: im2col over the valid positions, one SGEMM per group."""
    (sh, sw), (dh, dw), (eh, ew) = conv.window.stride, conv.window.dilation, conv.window.extent
    kh, kw = conv.window.kernel
    c, n = x.a.shape[:2]
    oh, ow = (x.h - eh) // sh + 1, (x.w - ew) // sw + 1
    groups, cout, depth = conv.weight.shape
    cin = c // groups
    out = np.empty((groups * cout, n, oh, ow), np.float32)
    dst = out.reshape(groups * cout, -1)
    cols = np.empty((depth, n, oh, ow), np.float32)
    taps = cols.reshape(cin, kh, kw, n, oh, ow)
    for g in range(groups):
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * dh, kx * dw
                taps[:, ky, kx] = x.a[g * cin:(g + 1) * cin, :,
                                      y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw]
        np.matmul(conv.weight[g], cols.reshape(depth, -1), out=dst[g * cout:(g + 1) * cout])
    conv.finish(dst)
    return Planes(out, oh, ow)


def convolve(x: Planes, chain: list[Conv], budget: int = BAND_BYTES) -> Planes:
    """Run a convolution (and the 1x1 convolutions fused after it) on planes."""
    window = chain[0].window
    if window.pad != (0, 0):
        x = pad_planes(x, *window.pad)
    if window.stride == (1, 1):
        return _convolve_shifted(x, chain, budget)
    out = _convolve_strided(x, chain[0])
    for conv in chain[1:]:
        out = _convolve_shifted(out, [conv], budget)
    return out


def _pool_output(c: int, n: int, h: int, w: int,
                 p: caffe_pb2.PoolingParameter) -> tuple[np.ndarray, netgraph.Kernel]:
    win = netgraph.pool_kernel(p, (n, c, h, w))
    (kh, kw), (sh, sw), (ph, pw) = win.extent, win.stride, win.pad
    ceil = p.round_mode == caffe_pb2.PoolingParameter.CEIL
    oh = netgraph.pooled_size(h, kh, sh, ph, ceil)
    ow = netgraph.pooled_size(w, kw, sw, pw, ceil)
    if p.pool not in (caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE):
        raise ValueError("stochastic pooling runs only in training")
    start = -np.inf if p.pool == caffe_pb2.PoolingParameter.MAX else 0.0
    return np.full((c, n, oh, ow), start, np.float32), win


def _pool_rows(x: Planes, p: caffe_pb2.PoolingParameter, win: netgraph.Kernel, out: np.ndarray,
               rows: tuple[int, int], y_offset: int, height: int) -> None:
    """Max or sum into output rows [rows) from `x`, which holds input rows from `y_offset` of
    an input `height` rows tall (all the rows those outputs read)."""
    (sh, sw), (ph, pw), (dh, dw) = win.stride, win.pad, win.dilation
    is_max = p.pool == caffe_pb2.PoolingParameter.MAX
    for ky in range(0, win.extent[0], dh):
        y0, y1 = _taps(ky, ph, sh, height, out.shape[2])
        y0, y1 = max(y0, rows[0]), min(y1, rows[1])
        for kx in range(0, win.extent[1], dw):
            x0, x1 = _taps(kx, pw, sw, x.w, out.shape[3])
            if y1 <= y0 or x1 <= x0:
                continue
            top = y0 * sh - ph + ky - y_offset
            src = x.a[:, :, top:top + (y1 - y0 - 1) * sh + 1:sh,
                      x0 * sw - pw + kx:(x1 - 1) * sw - pw + kx + 1:sw]
            dst = out[:, :, y0:y1, x0:x1]
            if is_max:
                np.maximum(dst, src, out=dst)
            else:
                dst += src


def _average(out: np.ndarray, p: caffe_pb2.PoolingParameter, win: netgraph.Kernel,
             h: int, w: int) -> None:
    """Turn AVE pooling's sums into means over Caffe's window (pad counts, overhang not)."""
    if p.pool != caffe_pb2.PoolingParameter.AVE:
        return
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = win.kernel, win.stride, win.pad, win.dilation
    out /= np.outer(ops.taps_inside(out.shape[2], sh, ph, kh, dh, h),
                    ops.taps_inside(out.shape[3], sw, pw, kw, dw, w))


def pool(x: Planes, p: caffe_pb2.PoolingParameter) -> Planes:
    """Caffe MAX/AVE pooling with ceil rounding, clipped edge windows and Caffe's divisor."""
    out, win = _pool_output(x.a.shape[0], x.a.shape[1], x.h, x.w, p)
    _pool_rows(x, p, win, out, (0, out.shape[2]), 0, x.h)
    _average(out, p, win, x.h, x.w)
    return Planes(out, out.shape[2], out.shape[3])


def _taps(k: int, pad: int, stride: int, size: int, out: int) -> tuple[int, int]:
    """The outputs [first, last) whose window tap `k` falls inside the data."""
    first = max(0, -(-(pad - k) // stride))
    last = min(out, (size - 1 + pad - k) // stride + 1)
    return first, last
