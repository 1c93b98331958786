"""Where a blob's cells look in the input: stride, offset and receptive field, as one `Geometry`.

The geometry is the transform from map cells to image pixels (napari's layer idea): cell
(i, j) of a blob is the window whose top-left corner is `offset + stride * (i, j)` in the
scaled image, `receptive_field` pixels wide. It is composed along the net's layers, never
assumed: each Convolution and Pooling multiplies the stride and widens the field, padding
moves the offset before the image, and a layer joining branches takes the union of their
windows.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from viewer.caffe.model_io import CaffeNet
from viewer.errors import ModelError
from viewer.net import netgraph
from viewer.net.netgraph import Kernel, Shape

Pair = tuple[int, int]


@dataclass(frozen=True)
class Geometry:
    """Where each cell looks, in scaled-image pixels, plus the scale back to the original.

    All pairs are (y, x). `scale` is the actual resize factor per axis (rounding of the scaled
    size makes it differ slightly from the requested one). Padding makes `offset` negative
    and `receptive_field` larger than the pixels a cell reads from the image itself.
    """

    stride: Pair
    offset: Pair
    receptive_field: Pair
    scale: tuple[float, float] = (1.0, 1.0)
    # A padded net's cells stand for the classifier's window (above), but its layers see
    # further, into the padding and beyond the window: their receptive field and its offset.
    # None when that is the window itself.
    padded_field: Pair | None = None
    padded_offset: Pair | None = None

    def through(self, kernel: Kernel) -> "Geometry":
        """The geometry of a layer applying `kernel` to this blob."""
        return Geometry(
            tuple(j * s for j, s in zip(self.stride, kernel.stride)),
            tuple(a - p * j for a, p, j in zip(self.offset, kernel.pad, self.stride)),
            tuple(r + (e - 1) * j for r, e, j in zip(self.receptive_field, kernel.extent,
                                                     self.stride)),
            self.scale)

    def padded(self) -> "Geometry":
        """The layers' own field as the cells' window: where a cell's value depends on the
        pixels (the window itself for a net without padding)."""
        return Geometry(self.stride, self.padded_offset or self.offset,
                        self.padded_field or self.receptive_field, self.scale)

    def shifted(self, dx: float, dy: float) -> "Geometry":
        """The geometry of a map of a crop whose corner is at original-image point (dx, dy),
        in the coordinates of the image it was cut from."""
        (ky, kx) = self.scale

        def move(offset: Pair | None) -> Pair | None:
            return None if offset is None else (offset[0] + dy * ky, offset[1] + dx * kx)

        return replace(self, offset=move(self.offset), padded_offset=move(self.padded_offset))

    def cell_window(self, i: int, j: int) -> tuple[float, float, float, float]:
        """Cell (i, j)'s window as (x, y, w, h) in original-image pixels."""
        (sy, sx), (oy, ox), (ry, rx), (ky, kx) = self.stride, self.offset, \
            self.receptive_field, self.scale
        return ((ox + j * sx) / kx, (oy + i * sy) / ky, rx / kx, ry / ky)

    def heatmap_rect(self, rows: int, cols: int) -> tuple[float, float, float, float]:
        """(x, y, w, h) in original pixels to draw a rows x cols map so each cell is a
        stride-sized block centred on its window's centre."""
        (sy, sx), (oy, ox), (ry, rx), (ky, kx) = self.stride, self.offset, \
            self.receptive_field, self.scale
        x0 = ox + (rx - sx) / 2.0
        y0 = oy + (ry - sy) / 2.0
        return (x0 / kx, y0 / ky, cols * sx / kx, rows * sy / ky)

    def cell_at(self, x: float, y: float) -> tuple[int, int]:
        """The cell whose block (see `heatmap_rect`) holds original-image point (x, y)."""
        rx0, ry0, _, _ = self.heatmap_rect(1, 1)
        (sy, sx), (ky, kx) = self.stride, self.scale
        return (int(np.floor((y - ry0) * ky / sy)), int(np.floor((x - rx0) * kx / sx)))

    def cells_inside(self, height: int, width: int) -> tuple[range, range]:
        """Rows and columns of cells whose whole window lies inside a scaled image.

        Only there does the dense map equal the classifier on a crop: other cells see padding.
        """
        return tuple(range(max(0, -(-(-o) // s)), max(0, (size - o - r) // s + 1))
                     for size, o, r, s in zip((height, width), self.offset,
                                              self.receptive_field, self.stride))


IDENTITY = Geometry((1, 1), (0, 0), (1, 1))


def _merged(layer, geometries: list[Geometry]) -> Geometry:
    """The geometry of a layer joining branches (Concat, Eltwise): the union of their windows."""
    if len({g.stride for g in geometries}) > 1:
        raise ModelError(f"layer '{layer.name}' ({layer.type}) joins branches with strides "
                         f"{', '.join(f'{g.stride[0]}x{g.stride[1]}' for g in geometries)}; "
                         "their cells do not line up")
    start = tuple(min(g.offset[a] for g in geometries) for a in range(2))
    end = tuple(max(g.offset[a] + g.receptive_field[a] for g in geometries) for a in range(2))
    return Geometry(geometries[0].stride, start, tuple(e - s for e, s in zip(end, start)))


def _through_layer(layer, known: list[Geometry], bottom: Shape) -> Geometry:
    """The geometry of `layer`'s tops from those of its bottoms."""
    if layer.type == "Convolution":
        return known[0].through(netgraph.conv_kernel(layer.convolution_param))
    if layer.type == "Pooling":
        return known[0].through(netgraph.pool_kernel(layer.pooling_param, bottom))
    if layer.type == "InnerProduct":
        size = tuple(bottom[2:4]) if len(bottom) == 4 else (1, 1)
        return known[0].through(Kernel(size, (1, 1), (0, 0)))
    if layer.type in netgraph.ELEMENTWISE | {"Flatten"}:
        return _merged(layer, known)
    raise ModelError(f"cannot follow the geometry through layer '{layer.name}'")


def geometry_of(net: CaffeNet, blob: str, scale: tuple[float, float] = (1.0, 1.0),
                shapes: dict[str, Shape] | None = None) -> Geometry:
    """Stride, offset and receptive field of `blob`'s cells, following every branch back to
    the input."""
    param = net.param
    shapes = netgraph.infer_shapes(param) if shapes is None else shapes
    found = {name: IDENTITY for name in netgraph.input_shapes(param)}
    for layer in netgraph.deploy_layers(param):
        if layer.type == "Input":
            continue
        known = [found[b] for b in layer.bottom if b in found]
        if not known:
            raise ModelError(f"cannot follow the geometry into layer '{layer.name}'")
        out = _through_layer(layer, known, shapes[layer.bottom[0]])
        for top in layer.top:
            found[top] = out
    if blob not in found:
        raise ModelError(f"net has no blob named '{blob}'")
    g = found[blob]
    return Geometry(g.stride, g.offset, g.receptive_field, scale)


def classifier_window(net: CaffeNet, blob: str, shapes: dict[str, Shape] | None = None
                      ) -> Geometry:
    """The cells of `blob` as the classifier's windows: the declared input size (less the
    strides between the cells it already holds), at offset 0, cell (i, j) being the crop at
    stride * (i, j). For a padded net that is smaller than the layers' receptive field, kept as
    `padded_field`: CaffeNet's window is 227 px at stride 32, its padded field 355 px."""
    shapes = shapes or netgraph.infer_shapes(net.param)
    field = geometry_of(net, blob, shapes=shapes)
    (_, declared), = netgraph.input_shapes(net.param).items()
    cells = shapes[blob][2:4] if len(shapes[blob]) == 4 else (1, 1)
    window = tuple(size - (c - 1) * s for size, c, s in zip(declared[2:4], cells, field.stride))
    if (window, (0, 0)) == (field.receptive_field, field.offset):
        return field
    return Geometry(field.stride, (0, 0), window, padded_field=field.receptive_field,
                    padded_offset=field.offset)
