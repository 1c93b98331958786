"""Why a cell of a dense map says what it says: attribution maps for one cell, in input pixels.

Every method works on the cell's own receptive field, not the whole image. The crop starts
on the map's stride grid (so each layer's positions line up with the full pass) at or before
the cell's padded field and ends with it: every value the cell depends on is then computed as
in the full pass, the net's zero padding falls only where the full image has its own edge or
outside the field, and one cell costs about one classifier pass. The result is pasted back
into an input-sized array, zero elsewhere, so `gradient` equals Caffe's `data.diff` after a
backward from that cell's score.

Methods: `gradient` (saliency), `gradient_x_input`, `guided` (guided backpropagation),
`deconv` (Zeiler-Fergus), `gradcam` (at a convolution, default the last one before the
surgered layers), `occlusion` (a grey patch slid over the cell's window, one batched pass on
the map's own engine) and `integrated` (integrated gradients from a grey input, 32 steps).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.engines.numpy_backward import Backward, Tape
from viewer.errors import ExplainError
from viewer.maps.featuremap import DenseClassifier
from viewer.net import netgraph
from viewer.net.geometry import Geometry, geometry_of

METHODS = ("gradient", "gradient_x_input", "guided", "deconv", "gradcam", "occlusion",
           "integrated")
TARGETS = ("score", "logprob")
PER_PIXEL = ("gradcam", "occlusion")     # one value per pixel, copied to each channel
STEPS = 32                  # integrated gradients
PATCH, PATCH_STRIDE = 6, 2  # occlusion on LeNet's 28 px window: 12 x 12 patches
GREY = 128


@dataclass
class Crop:
    """The part of the input one cell depends on: rows y0:y1, columns x0:x1, and where the
    cell sits in the crop's own map."""

    y0: int
    y1: int
    x0: int
    x1: int
    cell: tuple[int, int]

    def take(self, data: np.ndarray) -> np.ndarray:
        return data[..., self.y0:self.y1, self.x0:self.x1]

    def paste(self, part: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """`part` in an array of `shape`, zero outside the crop."""
        full = np.zeros(shape, np.float32)
        full[..., self.y0:self.y1, self.x0:self.x1] = part
        return full


@dataclass
class Explanation:
    """One cell explained: the input as the net saw it and one map per method, each in the
    input blob's shape (C x H x W)."""

    input: np.ndarray
    maps: dict[str, np.ndarray]
    cell: tuple[int, int]
    channel: int
    label: str
    versus: int | None
    target: str
    layer: str
    score: float
    geometry: Geometry
    window: tuple[int, int, int, int]     # the crop: y0, y1, x0, x1 in input pixels
    versus_label: str = ""
    ranking: list[str] = field(default_factory=list)    # the cell's classes, best first

    def picture(self, method: str) -> np.ndarray:
        """H x W: the method's map summed over channels (signed where the method is); gradcam
        and occlusion give every channel the same per-pixel value, so that value."""
        values = self.maps[method]
        return values[0] if method in PER_PIXEL else values.sum(axis=0)


def cell_crop(field: Geometry, cell: tuple[int, int], size: tuple[int, int]) -> Crop:
    """Where cell (i, j) of a map with this padded `field` reads an input of `size` (H, W)."""
    starts, ends, inside = [], [], []
    for index, stride, offset, extent, length in zip(cell, field.stride, field.offset,
                                                     field.receptive_field, size):
        first = index * stride + offset
        start = max(0, first // stride * stride)
        starts.append(start)
        ends.append(min(length, first + extent))
        inside.append(index - start // stride)
    return Crop(starts[0], ends[0], starts[1], ends[1], tuple(inside))


def default_layer(dense: DenseClassifier) -> str:
    """The last convolution whose map at the classifier's window is still more than one
    cell: the last one before the surgered layers (`conv2` of LeNet, `conv5` of CaffeNet)."""
    shapes = netgraph.infer_shapes(dense.net.param)
    convs = [l.top[0] for l in netgraph.deploy_layers(dense.net.param)
             if l.type == "Convolution" and np.prod(shapes[l.top[0]][2:]) > 1]
    if not convs:
        raise ExplainError("the net has no convolution with a spatial map for gradcam")
    return convs[-1]


class Explainer:
    """Explains cells of `dense`'s native map; the backward runs in numpy on its net."""

    def __init__(self, dense: DenseClassifier) -> None:
        # Cells are those of the net's own map: a fine map's engine would give other cells.
        self.dense = dense if dense.unit.stride == dense.native_stride else dense.at_stride(None)
        self.net = self.dense.net
        self.blob = self.dense.score_blob
        self.field = geometry_of(self.net, self.blob)
        self._backward: Backward | None = None
        self._shapes: dict[tuple, dict] = {}
        self._layer = ""
        self.backward_input = next(iter(netgraph.input_shapes(self.net.param)))
        self.fill = self._grey()

    @property
    def backward(self) -> Backward:
        """The numpy backward pass (made on first use: occlusion needs none)."""
        if self._backward is None:
            self._backward = Backward(self.net)
        return self._backward

    def _grey(self) -> np.ndarray:
        """The input value of a grey pixel per channel, the occlusion patch and the baseline."""
        transformer = self.dense.transformer
        pixel = np.full((1, 1, 3) if transformer.color else (1, 1), GREY, np.uint8)
        return transformer.transform(pixel)[0, :, 0, 0]

    def channel_of(self, name: str | int) -> int:
        """A class index from its label or number, or an `ExplainError` naming it."""
        labels = self.dense.labels
        if isinstance(name, str) and name in labels:
            return labels.index(name)
        if str(name).isdigit() and int(name) < len(labels):
            return int(name)
        raise ExplainError(f"unknown class '{name}'; the net's classes are "
                           f"{', '.join(labels[:40])}{' ...' if len(labels) > 40 else ''}")

    def ranking(self, data: np.ndarray, cell: tuple[int, int]) -> list[int]:
        """The classes at the cell, highest score first (one pass over its crop)."""
        crop = cell_crop(self.field, cell, data.shape[2:])
        scores = self.dense.engine.forward(crop.take(data), [self.blob])[self.blob]
        return [int(k) for k in np.argsort(-scores[0, :, crop.cell[0], crop.cell[1]],
                                           kind="stable")]

    def best_class(self, data: np.ndarray, cell: tuple[int, int]) -> int:
        """The class with the highest score at the cell."""
        return self.ranking(data, cell)[0]

    def shapes(self, shape: tuple[int, ...]) -> dict:
        """The net's blob shapes for an input of `shape` (worked out once per shape)."""
        shape = tuple(shape)
        if shape not in self._shapes:
            self._shapes[shape] = netgraph.infer_shapes(self.net.param,
                                                        {self.backward_input: shape})
        return self._shapes[shape]

    def map_size(self, data: np.ndarray) -> tuple[int, int]:
        """Rows and columns of the native map of `data`."""
        return tuple(self.shapes(data.shape)[self.blob][2:4])

    def check(self, data: np.ndarray, cell: tuple[int, int], methods, layer: str | None,
              target: str) -> str:
        """Refuse what cannot be explained before any work; returns the gradcam layer."""
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ExplainError(f"unknown method '{unknown[0]}'; choose from {', '.join(METHODS)}")
        if target not in TARGETS:
            raise ExplainError(f"unknown target '{target}'; choose score or logprob")
        shapes = self.shapes(data.shape)
        rows, cols = shapes[self.blob][2:4]
        if not (0 <= cell[0] < rows and 0 <= cell[1] < cols):
            raise ExplainError(f"cell {cell[0]},{cell[1]} is outside the map of {rows} x "
                               f"{cols} cells (rows 0-{rows - 1}, columns 0-{cols - 1})")
        if any(m != "occlusion" for m in methods):
            self.backward                               # names a layer without backward
        if "gradcam" not in methods:
            return layer or ""
        if layer is None:
            self._layer = self._layer or default_layer(self.dense)
            layer = self._layer
        if layer not in shapes or len(shapes[layer]) != 4:
            spatial = [b for b, s in shapes.items() if len(s) == 4 and b != self.backward_input]
            raise ExplainError(f"unknown layer '{layer}' for gradcam; choose a blob of the "
                               f"net: {', '.join(spatial)}")
        return layer

    def explain(self, data: np.ndarray, cell: tuple[int, int], channel: int,
                methods=("gradient",), layer: str | None = None, target: str = "score",
                versus: int | None = None, geometry: Geometry | None = None) -> Explanation:
        """Explain cell (i, j)'s class `channel` on `data` (1 x C x H x W, prepared); with
        `versus`, the difference of its score and that class's ("why H and not W")."""
        layer = self.check(data, cell, methods, layer, target)
        crop = cell_crop(self.field, cell, data.shape[2:])
        part = crop.take(data)
        maps, tape = {}, None
        gradients = {"gradient", "gradient_x_input", "guided", "deconv", "gradcam"}
        if gradients & set(methods):
            tape = self.backward.forward(part)
        score = None
        for method in methods:
            if method == "occlusion":
                local, score = self._occlusion(part, crop, channel, versus)
            elif method == "integrated":
                local = self._integrated(part, crop, channel, versus, target)
            else:
                local = self._from_tape(method, tape, part, crop, channel, versus, target, layer)
            maps[method] = crop.paste(local, data.shape[1:])
        if score is None and tape is not None:
            score = float(self._scores(tape.values[self.blob], crop, channel, versus)[0])
        if score is None:
            score = float(self._scores(self.dense.engine.forward(part, [self.blob])[self.blob],
                                       crop, channel, versus)[0])
        return Explanation(data[0], maps, tuple(cell), channel, self.dense.labels[channel],
                           versus, target, layer, score, geometry or self.dense.unit,
                           (crop.y0, crop.y1, crop.x0, crop.x1),
                           self.dense.labels[versus] if versus is not None else "")

    def _seed(self, scores: np.ndarray, crop: Crop, channel: int, versus: int | None,
              target: str) -> np.ndarray:
        """The diff put on the score blob: one at the cell's class (minus one at `versus`), or
        for `logprob` the derivative of log softmax, one-hot minus the probabilities."""
        i, j = crop.cell
        seed = np.zeros_like(scores)
        seed[:, channel, i, j] = 1.0
        if versus is not None:
            seed[:, versus, i, j] -= 1.0
        elif target == "logprob":
            cell = scores[:, :, i, j].astype(np.float64)
            probs = np.exp(cell - cell.max(axis=1, keepdims=True))
            seed[:, :, i, j] -= (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
        return seed

    def _scores(self, scores: np.ndarray, crop: Crop, channel: int,
                versus: int | None) -> np.ndarray:
        i, j = crop.cell
        value = scores[:, channel, i, j]
        return value - scores[:, versus, i, j] if versus is not None else value

    def _from_tape(self, method: str, tape: Tape, part: np.ndarray, crop: Crop, channel: int,
                   versus: int | None, target: str, layer: str) -> np.ndarray:
        seed = self._seed(tape.values[self.blob], crop, channel, versus, target)
        rule = method if method in ("guided", "deconv") else "gradient"
        keep = [layer] if method == "gradcam" else []
        diffs = self.backward.backward(tape, {self.blob: seed}, rule, keep)
        if method == "gradcam":
            return self._gradcam(tape.values[layer], diffs[layer], crop, part.shape, layer)
        grad = diffs[self.backward_input][0]
        return grad * part[0] if method == "gradient_x_input" else grad

    def _gradcam(self, activation: np.ndarray, diff: np.ndarray, crop: Crop,
                 shape: tuple[int, ...], layer: str) -> np.ndarray:
        """Grad-CAM: the layer's channels weighted by their mean gradient, rectified, each
        position painted over its stride-sized block at its window's centre, within the
        cell's padded field."""
        weights = diff[0].mean(axis=(1, 2))
        cam = np.maximum(np.tensordot(weights, activation[0], axes=1), 0)
        g = geometry_of(self.net, layer)
        picture = np.zeros(shape[2:], np.float32)
        for p, q in zip(*np.nonzero(cam)):
            y = int(g.offset[0] + p * g.stride[0] + (g.receptive_field[0] - g.stride[0]) // 2)
            x = int(g.offset[1] + q * g.stride[1] + (g.receptive_field[1] - g.stride[1]) // 2)
            picture[max(0, y):max(0, y + g.stride[0]), max(0, x):max(0, x + g.stride[1])] = \
                cam[p, q]
        picture *= self._field_mask(crop, shape[2:])
        return np.broadcast_to(picture, shape[1:]).copy()

    def _field_mask(self, crop: Crop, size: tuple[int, int]) -> np.ndarray:
        """1 inside the cell's padded field (in crop pixels), 0 in the crop's margin."""
        mask = np.zeros(size, np.float32)
        (i, j), (sy, sx), (oy, ox), (ry, rx) = crop.cell, self.field.stride, self.field.offset, \
            self.field.receptive_field
        top, left = max(0, oy + i * sy), max(0, ox + j * sx)
        mask[top:max(top, oy + i * sy + ry), left:max(left, ox + j * sx + rx)] = 1
        return mask

    def occlusion_batch(self, part: np.ndarray, crop: Crop) -> tuple[np.ndarray, list]:
        """The crop once per grey patch position over the cell's window, as one batch."""
        window = self.dense.unit
        (i, j), (sy, sx) = crop.cell, self.field.stride
        top = max(0, window.offset[0] + i * sy)
        left = max(0, window.offset[1] + j * sx)
        bottom = min(part.shape[2], top + window.receptive_field[0])
        right = min(part.shape[3], left + window.receptive_field[1])
        places = [(y, x) for y in range(top, max(top + 1, bottom - PATCH + 1), PATCH_STRIDE)
                  for x in range(left, max(left + 1, right - PATCH + 1), PATCH_STRIDE)]
        batch = np.repeat(part, len(places) + 1, axis=0)
        for k, (y, x) in enumerate(places, start=1):
            batch[k, :, y:y + PATCH, x:x + PATCH] = self.fill[:, None, None]
        return batch, places

    def _occlusion(self, part: np.ndarray, crop: Crop, channel: int,
                   versus: int | None) -> tuple[np.ndarray, float]:
        """Per pixel, the mean drop of the cell's score when a grey patch covers it."""
        batch, places = self.occlusion_batch(part, crop)
        scores = self.dense.engine.forward(batch, [self.blob])[self.blob]
        values = self._scores(scores, crop, channel, versus)
        drop = np.zeros(part.shape[2:], np.float64)
        count = np.zeros(part.shape[2:], np.float64)
        for (y, x), value in zip(places, values[1:]):
            drop[y:y + PATCH, x:x + PATCH] += values[0] - value
            count[y:y + PATCH, x:x + PATCH] += 1
        picture = np.where(count > 0, drop / np.maximum(count, 1), 0).astype(np.float32)
        return np.broadcast_to(picture, part.shape[1:]).copy(), float(values[0])

    def _integrated(self, part: np.ndarray, crop: Crop, channel: int, versus: int | None,
                    target: str) -> np.ndarray:
        """Integrated gradients from a grey input: the mean gradient at STEPS points along the
        straight path (midpoints), times the input minus the baseline, in one batched pass."""
        baseline = np.broadcast_to(self.fill[None, :, None, None], part.shape)
        alphas = ((np.arange(STEPS) + 0.5) / STEPS).astype(np.float32)[:, None, None, None]
        path = baseline + alphas * (part - baseline)
        tape = self.backward.forward(path)
        seed = self._seed(tape.values[self.blob], crop, channel, versus, target)
        grads = self.backward.backward(tape, {self.blob: seed})[self.backward_input]
        return (grads.mean(axis=0) * (part[0] - baseline[0])).astype(np.float32)
