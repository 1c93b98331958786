"""BLAS engine: Caffe's own recipe (im2col + one large SGEMM per convolution), tuned, in numpy.

The cost of a dense pass is almost all matrix products, so this engine spends its effort on
feeding numpy's BLAS large products and little else:

- Activations are stored channel-major as *planes* `(C, N, rows, pitch)` whose valid part is
  the top-left `h x w` of each image. A stride-1 convolution then reads, for kernel tap
  `(ky, kx)`, the flat plane shifted by `ky * pitch + kx`: im2col is one contiguous copy per tap
  and channel block, and the output keeps the input's pitch (the columns past `w` hold values
  of no meaning that no valid output ever reads). A batch is one tall image.
- Products are computed in bands of output positions, with the bias, in-place layers (ReLU)
  and a following 1x1 convolution applied to the band while it is in cache. So LeNet's
  `ip1-conv` (500 x 800 per position) is never held whole when nobody asks for it, which
  also bounds memory on large photos.
- Any layer without a fast path (LRN, Concat, Softmax, ...) runs through the numpy reference
  implementation on ordinary N x C x H x W arrays, so the engine is exact for every net the
  numpy engine runs.
"""
from __future__ import annotations

import math

import numpy as np

from viewer import progress
from viewer.caffe.model_io import CaffeNet
from viewer.engines import ops
from viewer.engines.base import Engine
from viewer.engines.blas_kernels import (BAND_BYTES, BYTE_WORK, POINTWISE, Conv, Planes, Step,
                                         apply_pointwise, as_nchw, band_size, convolve,
                                         convolve_pooled, pad_planes, pool, wrap)
from viewer.net import cost, netgraph


class BlasEngine(Engine):
    """numpy + BLAS forward pass with banded im2col products and fused pointwise layers."""

    name = "blas"

    def __init__(self, net: CaffeNet, band_bytes: int = BAND_BYTES) -> None:
        super().__init__(net)
        self.band_bytes = band_bytes
        self._plans: dict[tuple[str, ...], list[Step]] = {}
        self.layers = [l for l in self.deploy if l.type != "Input"]

    def plan(self, blobs: list[str]) -> list[Step]:
        """The steps for a pass that must keep `blobs`, fusing what nobody looks at."""
        key = tuple(sorted(blobs))
        if key in self._plans:
            return self._plans[key]
        reads = [set(l.bottom) for l in self.layers]
        steps: list[Step] = []
        i = 0
        while i < len(self.layers):
            layer = self.layers[i]
            i += 1
            if layer.type != "Convolution" or len(layer.top) != 1:
                steps.append(Step(layer))
                continue
            chain = [Conv.of(layer, self.net.weights.get(layer.name, []))]
            while True:
                top = chain[-1].layer.top[0]
                while (i < len(self.layers) and self.layers[i].type in POINTWISE
                       and list(self.layers[i].bottom) == [top]
                       and list(self.layers[i].top) == [top]):
                    chain[-1].after.append(self.layers[i])
                    i += 1
                if i >= len(self.layers) or top in key or self.layers[i].type != "Convolution":
                    break
                nxt = Conv.of(self.layers[i], self.net.weights.get(self.layers[i].name, []))
                read_later = any(top in r for r in reads[i + 1:])
                if (not nxt.is_pointwise or list(nxt.layer.bottom) != [top] or read_later
                        or nxt.layer.top[0] == top):
                    break
                chain.append(nxt)
                i += 1
            step = Step(layer, chain)
            top = chain[-1].layer.top[0]
            if (i < len(self.layers) and self.layers[i].type == "Pooling" and top not in key
                    and list(self.layers[i].bottom) == [top] and self.layers[i].top[0] != top
                    and not self.layers[i].pooling_param.global_pooling
                    and chain[0].window.stride == (1, 1)
                    and not any(top in r for r in reads[i + 1:])):
                step.pool = self.layers[i]
                i += 1
            steps.append(step)
        self._plans[key] = steps
        return steps

    @staticmethod
    def _last_reads(steps: list[Step]) -> dict[str, int]:
        last_read = {}
        for k, step in enumerate(steps):
            for layer in ([c.layer for c in step.chain] + [a for c in step.chain for a in c.after]
                          + ([step.pool] if step.pool else []) if step.chain else [step.layer]):
                for b in layer.bottom:
                    last_read[b] = k
        return last_read

    def peak_bytes(self, input_shape: tuple[int, ...], blobs: list[str]) -> int:
        """Bytes this engine holds at its peak for an input of this shape, without running it.

        Follows the same plan as a forward pass: planes keep their input's rows and pitch
        through stride-1 convolutions, fused intermediates exist only as bands, and blobs are
        dropped after their last reader.
        """
        steps = self.plan([b for b in blobs if b != self.input_name])
        last_read = self._last_reads(steps)
        shapes = netgraph.infer_shapes(self.net.param, {self.input_name: tuple(input_shape)})
        n = input_shape[0]
        # blob -> (bytes held, rows, pitch) of its storage
        held = {self.input_name: (4 * math.prod(input_shape), input_shape[2], input_shape[3])}
        peak = 2 * held[self.input_name][0]  # the caller's array and our copy
        for k, step in enumerate(steps):
            alive = sum(v[0] for v in held.values())
            top = step.top
            shape = shapes[top]
            scratch = 0
            if step.chain:
                _, rows, pitch = held[step.layer.bottom[0]]
                conv = step.chain[0]
                c = shapes[step.layer.bottom[0]][1]
                if conv.window.pad != (0, 0):
                    rows = shapes[step.layer.bottom[0]][2] + 2 * conv.window.pad[0]
                    pitch = shapes[step.layer.bottom[0]][3] + 2 * conv.window.pad[1]
                    scratch += 4 * c * n * rows * pitch
                if conv.window.stride != (1, 1):
                    rows, pitch = shape[2], shape[3]
                    scratch += 4 * conv.weight.shape[2] * n * rows * pitch
                else:
                    depth = conv.weight.shape[2]
                    band = band_size(depth, step.chain, self.band_bytes)
                    scratch += 4 * band * (depth + sum(cv.weight.shape[0] * cv.weight.shape[1]
                                                       for cv in step.chain[:-1]))
                out = (4 * shape[1] * n * rows * pitch, rows, pitch)
                if step.pool:
                    conv_shape = shapes[step.chain[-1].layer.top[0]]
                    if n == 1:  # the convolution exists only as bands of rows
                        band = band_size(conv.weight.shape[2], step.chain, self.band_bytes)
                        out = (4 * conv_shape[1] * min(rows * pitch, band + 2 * pitch), 1, 1)
                    scratch += out[0]
                    out = (4 * math.prod(shape), shape[2], shape[3])
            elif step.layer.type in ("Dropout", "Split"):
                out = (0,) + held[step.layer.bottom[0]][1:]
            elif step.layer.type in POINTWISE and step.layer.top[0] == step.layer.bottom[0]:
                out = held[step.layer.bottom[0]]
                held[top] = (0, out[1], out[2])
            else:
                out = (4 * math.prod(shape),) + (tuple(shape[2:4]) if len(shape) == 4 else (1, 1))
                if step.layer.type not in {"Pooling", "InnerProduct"} | POINTWISE:
                    scratch += sum(4 * math.prod(shapes[b]) for b in step.layer.bottom)
                    scratch += 4 * cost.reference_scratch(step.layer, shapes)  # numpy runs it
            held[top] = out
            peak = max(peak, alive + out[0] + scratch)
            for b in [b for b in held if last_read.get(b, -1) <= k and b not in blobs]:
                del held[b]
        return int(peak * 1.05)  # numpy temporaries the plan does not list

    def _shares(self, steps: list[Step], input_shape: tuple[int, ...]) -> list[float]:
        """Where each step ends, as a fraction of the pass, for `progress`: its arithmetic
        plus its memory traffic at BYTE_WORK operations per byte."""
        shapes = netgraph.infer_shapes(self.net.param, {self.input_name: tuple(input_shape)})
        work = []
        for step in steps:
            layers = [c.layer for c in step.chain] + ([step.pool] if step.pool else []) \
                or [step.layer]
            work.append(sum(cost.layer_flops(l, shapes) + BYTE_WORK * 4 *
                            cost.layer_traffic(l, shapes) for l in layers))
        total = sum(work) or 1
        return [sum(work[:k + 1]) / total for k in range(len(work))]

    def _forward(self, data: np.ndarray, blobs: list[str]) -> dict[str, np.ndarray]:
        steps = self.plan(blobs)
        last_read = self._last_reads(steps)
        ends = self._shares(steps, data.shape)
        # A copy: in-place layers must never write into the caller's array.
        values: dict[str, object] = {self.input_name: Planes.from_nchw(data.copy())}
        for k, step in enumerate(steps):
            with progress.part(ends[k - 1] if k else 0.0, ends[k]):
                self._run(step, values)
            for b in [b for b in values if last_read.get(b, -1) <= k and b not in blobs]:
                del values[b]
        return {b: as_nchw(values[b]) for b in blobs}

    def _run(self, step: Step, values: dict[str, object]) -> None:
        layer = step.layer
        if step.chain:
            x = values[layer.bottom[0]]
            if not isinstance(x, Planes):
                x = wrap(x)
            if step.pool and x.a.shape[1] == 1:
                window = step.chain[0].window
                if window.pad != (0, 0):
                    x = pad_planes(x, *window.pad)
                values[step.top] = convolve_pooled(x, step.chain, step.pool.pooling_param,
                                                    self.band_bytes)
            elif step.pool:
                values[step.top] = pool(convolve(x, step.chain, self.band_bytes),
                                        step.pool.pooling_param)
            else:
                values[step.top] = convolve(x, step.chain, self.band_bytes)
            return
        x = values[layer.bottom[0]] if layer.bottom else None
        kind = layer.type
        if kind in ("Dropout", "Split"):
            for top in layer.top:
                values[top] = x
            return
        if kind == "Pooling" and isinstance(x, Planes):
            values[layer.top[0]] = pool(x, layer.pooling_param)
            return
        if kind in POINTWISE and isinstance(x, Planes):
            shared = sum(v is x for v in values.values()) > 1
            if not (layer.top[0] == layer.bottom[0] and not shared):
                x = Planes(x.a.copy(), x.h, x.w)
            apply_pointwise(layer, x.a)
            values[layer.top[0]] = x
            return
        if kind == "InnerProduct":
            p = layer.inner_product_param
            params = self.net.weights[layer.name]
            flat = as_nchw(x).reshape(as_nchw(x).shape[0], -1) if isinstance(x, Planes) \
                else x.reshape(x.shape[0], -1)
            weight = params[0] if p.transpose else params[0].T
            out = flat @ weight
            values[layer.top[0]] = out + params[1] if p.bias_term else out
            return
        bottoms = [as_nchw(values[b]) for b in layer.bottom]
        out = ops.run_layer(layer, bottoms, self.net.weights.get(layer.name, []))
        for top in layer.top:
            values[top] = wrap(out)
