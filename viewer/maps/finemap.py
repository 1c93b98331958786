"""Engines for fine maps: a rarefied net where the engine runs one, shift-and-stitch elsewhere.

Rarefaction (viewer.surgery.rarefaction) shares the work between the cells of a fine map; it needs an
engine that runs dilated pooling (numpy, blas, onnx). Caffe and OpenCV have no dilated pooling,
and some layers cannot be rarefied (global pooling, LRN within a channel): those maps come from
shift-and-stitch, the native net run once per shift of the input, its outputs interleaved.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

from viewer.net import netgraph
from viewer.engines import Engine, create_engine
from viewer.caffe.model_io import CaffeNet
from viewer.errors import EngineError, RarefactionError
from viewer.surgery.rarefaction import Change, check_stride, rarefy

# Engines that run dilated pooling, so a rarefied net.
RAREFYING = ("numpy", "blas", "onnx")
RAREFACTION, SHIFT_AND_STITCH, NATIVE = "rarefaction", "shift-and-stitch", "native"


@dataclass
class FineMethod:
    """How a map at `stride` is computed, which layers changed, and why not by rarefaction."""

    stride: int
    method: str
    changes: list[Change] = field(default_factory=list)
    note: str = ""


class StitchedEngine(Engine):
    """Shift-and-stitch over another engine: the native net run on the input shifted by each
    multiple of the fine stride within a native one, the score blobs interleaved. Blobs at a
    coarser spacing than the scores' (conv1) come from the unshifted pass.

    An input is shifted by zeros before it, one native stride less the shift, and the first
    cell dropped: cropping instead would put the net's own padding inside the image, and
    cells near the top and left edges would differ from the rarefied net's."""

    def __init__(self, inner: Engine, stride: int, native: tuple[int, int],
                 rarefied: CaffeNet | None = None) -> None:
        super().__init__(inner.net)
        self.inner, self.stride, self.native = inner, stride, native
        self.rarefied = rarefied  # when there is one, its output size is the fine map's
        self.name = inner.name
        self.factor = tuple(s // stride for s in native)
        self.score_blob = netgraph.score_blob(inner.net.param)

    def _shifts(self) -> list[tuple[int, int]]:
        return [(a, b) for a in range(self.factor[0]) for b in range(self.factor[1])]

    def _forward(self, data: np.ndarray, blobs: list[str]) -> dict[str, np.ndarray]:
        outs = {}
        (fy, fx), n = self.factor, self.stride
        for a, b in self._shifts():
            before = ((fy - a) * n if a else 0, (fx - b) * n if b else 0)
            shifted = np.pad(data, ((0, 0), (0, 0), (before[0], 0), (before[1], 0)))
            asked = blobs if (a, b) == (0, 0) else [self.score_blob]
            got = self.inner.forward(shifted, list(dict.fromkeys(asked + [self.score_blob])))
            outs[a, b] = got[self.score_blob][:, :, int(a > 0):, int(b > 0):]
            if (a, b) == (0, 0):
                first = got
        result = {b: first[b] for b in blobs}
        if self.score_blob in blobs:
            fine = stitch(outs, self.factor)
            if self.rarefied is not None:
                shapes = netgraph.infer_shapes(self.rarefied.param, {self.input_name: data.shape})
                fine = fine[:, :, :shapes[self.score_blob][2], :shapes[self.score_blob][3]]
            result[self.score_blob] = np.ascontiguousarray(fine)
        return result

    def peak_bytes(self, input_shape: tuple[int, ...], blobs: list[str]) -> int:
        """The unshifted native pass, plus the shifted scores kept until they are stitched."""
        need = self.inner.peak_bytes(input_shape, blobs)
        shapes = netgraph.infer_shapes(self.net.param, {self.input_name: tuple(input_shape)})
        scores = 4 * int(np.prod(shapes[self.score_blob]))
        return need + 2 * scores * self.factor[0] * self.factor[1]


def stitch(outs: dict[tuple[int, int], np.ndarray], factor: tuple[int, int]) -> np.ndarray:
    """Interleave the maps of the shifted inputs: shift (a, b) fills rows a::fy, columns b::fx.

    The fine map keeps the rows and columns that every shift reaches."""
    fy, fx = factor
    rows = min(fy * outs[a, 0].shape[2] + a for a in range(fy))
    cols = min(fx * outs[0, b].shape[3] + b for b in range(fx))
    n, c = outs[0, 0].shape[:2]
    fine = np.empty((n, c, rows, cols), np.float32)
    for (a, b), out in outs.items():
        part = fine[:, :, a::fy, b::fx]
        part[...] = out[:, :, :part.shape[2], :part.shape[3]]
    return fine


def fine_method(net: CaffeNet, name: str, stride: int) -> FineMethod:
    """How the named engine will compute `net`'s map at `stride`, without making the engine
    (an onnx graph that cannot load still falls back when `create_fine_engine` builds it)."""
    native = check_stride(net, stride)
    if native == (stride, stride):
        return FineMethod(stride, NATIVE)
    try:
        rarefied = rarefy(net, stride)
    except RarefactionError as err:
        return FineMethod(stride, SHIFT_AND_STITCH, note=str(err))
    if name in RAREFYING:
        return FineMethod(stride, RAREFACTION, rarefied.changes)
    return FineMethod(stride, SHIFT_AND_STITCH, note=f"the {name} engine has no dilated pooling")


def create_fine_engine(name: str, net: CaffeNet, stride: int) -> tuple[Engine, FineMethod]:
    """The named engine computing `net`'s map at output stride `stride`, and how it does."""
    native = check_stride(net, stride)
    if native == (stride, stride):
        return create_engine(name, net), FineMethod(stride, NATIVE)
    try:
        rarefied = rarefy(net, stride)
    except RarefactionError as err:
        rarefied, note = None, str(err)
    else:
        note = f"the {name} engine has no dilated pooling"
    if rarefied is not None and name in RAREFYING:
        try:
            engine = create_engine(name, rarefied.net)
            _check_loads(engine)
            return engine, FineMethod(stride, RAREFACTION, rarefied.changes)
        except EngineError as err:
            note = str(err)
    engine = StitchedEngine(create_engine(name, net), stride, native,
                            rarefied.net if rarefied else None)
    return engine, FineMethod(stride, SHIFT_AND_STITCH, note=note)


def _check_loads(engine: Engine) -> None:
    """Build an onnx engine's graph now, so a layer it cannot run falls back here and not
    in the middle of a pass."""
    session = getattr(engine, "session", None)
    if session is not None:
        session([netgraph.score_blob(engine.net.param)])
