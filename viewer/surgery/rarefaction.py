"""Filter rarefaction: a fully convolutional net -> the same net with a finer output stride.

A strided layer (a pooling, a convolution) skips positions. Giving it a smaller stride keeps
them, and every later kernel then reads its input at spacing of the stride removed before it:
its dilation and pad grow by that factor ("a trous"; Long, Shelhamer & Darrell, FCN, 3.2).
The result computes exactly the cells that shift-and-stitch would, sharing the work between
them. Strides are kept from the first layers on, where a map is cheapest to compute, and
removed from the later ones, until the output stride is the one asked for.

Caffe's Pooling has no dilation: a rarefied net's pooling layers carry one in our caffe.proto's
extra `dilation` field, which the numpy, blas and onnx engines run (see viewer.maps.finemap).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from viewer.net.weights import check_weights
from viewer.net import netgraph
from viewer.net.geometry import geometry_of
from viewer.errors import RarefactionError, SurgeryError
from viewer.caffe.model_io import CaffeNet, structure_of
from viewer.caffe.proto import caffe_pb2
from viewer.surgery.verify import Verification

Pair = tuple[int, int]
# Layers whose output at a position depends on the input at that position only.
POINTWISE = netgraph.ELEMENTWISE - {"LRN"}



@dataclass(frozen=True)
class Change:
    """One layer whose stride, dilation or pad rarefaction changed, (y, x) before and after."""

    layer: str
    kind: str
    stride: tuple[Pair, Pair]
    dilation: tuple[Pair, Pair]
    pad: tuple[Pair, Pair]

    def describe(self) -> str:
        """"pool2 (Pooling): stride 2 -> 1, dilation 1 -> 2" for the surgery panel."""
        parts = [f"{what} {_pair(old)} -> {_pair(new)}"
                 for what, (old, new) in (("stride", self.stride), ("dilation", self.dilation),
                                          ("pad", self.pad)) if old != new]
        return f"{self.layer} ({self.kind}): {', '.join(parts)}"

    def as_dict(self) -> dict:
        return {"layer": self.layer, "type": self.kind,
                **{what: {"before": list(old), "after": list(new)} for what, (old, new) in
                   (("stride", self.stride), ("dilation", self.dilation), ("pad", self.pad))}}


def _pair(p: Pair) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


@dataclass
class Rarefaction:
    """The rarefied net, its output stride, and the layers that changed."""

    net: CaffeNet
    stride: int
    native: Pair
    changes: list[Change]


@dataclass(frozen=True)
class _State:
    """How a blob of the rarefied net relates to the original: the spacing of its original
    positions (`dilation`), and how much of the target stride is still to be kept (`budget`)."""

    dilation: Pair
    budget: Pair


def native_stride(net: CaffeNet) -> Pair:
    """The output stride of a fully convolutional net's score blob, (y, x)."""
    shapes = netgraph.infer_shapes(net.param)
    return geometry_of(net, netgraph.score_blob(net.param), shapes=shapes).stride


def check_stride(net: CaffeNet, stride: int) -> Pair:
    """The net's native stride, or a SurgeryError listing the strides a fine map can have."""
    native = native_stride(net)
    if stride < 1 or any(s % stride for s in native):
        common = math.gcd(*native)
        choices = [str(d) for d in range(1, common + 1) if common % d == 0]
        raise SurgeryError(f"stride {stride} does not divide the net's native stride "
                           f"{_pair(native)}; choose one of {', '.join(choices)}")
    return native


def rarefy(net: CaffeNet, stride: int) -> Rarefaction:
    """The fully convolutional `net` rarefied to output stride `stride` (a divisor of its own).

    Layers and blobs keep their names and weights (the same arrays); `net` is not modified.
    Raises RarefactionError for a layer that cannot be rarefied (global pooling, LRN within
    a channel, branches joined at different spacings).
    """
    native = check_stride(net, stride)
    out = structure_of(net.param)
    out.name = f"{net.param.name or 'net'}-stride{stride}"
    input_name = next(iter(netgraph.input_shapes(net.param)))
    states = {input_name: _State((1, 1), (stride, stride))}
    changes = []
    for layer in out.layer:
        if not _runs(layer):
            continue
        state = _bottom_state(layer, states)
        if layer.type in ("Convolution", "Pooling"):
            change, state = _rarefy_window(layer, state)
            if change:
                changes.append(change)
        elif layer.type == "LRN":
            if layer.lrn_param.norm_region != caffe_pb2.LRNParameter.ACROSS_CHANNELS and \
                    state.dilation != (1, 1):
                raise RarefactionError(f"LRN '{layer.name}' normalises within a channel after "
                                       "a removed stride; it has no dilation to rarefy")
        elif layer.type not in POINTWISE:
            raise RarefactionError(f"cannot rarefy through layer '{layer.name}' ({layer.type})")
        for top in layer.top:
            states[top] = state
    fine = CaffeNet(out, dict(net.weights), source=f"{net.source} (rarefied to stride {stride})")
    check_weights(fine, None)
    return Rarefaction(fine, stride, native, changes)


def _runs(layer: caffe_pb2.LayerParameter) -> bool:
    return (netgraph.in_test_phase(layer) and layer.type not in netgraph.TRAINING_ONLY
            and layer.type != "Input")


def _bottom_state(layer: caffe_pb2.LayerParameter, states: dict[str, _State]) -> _State:
    """The one state of a layer's inputs: joined branches must agree on their spacing."""
    found = {states[b] for b in layer.bottom}
    if len(found) > 1:
        raise RarefactionError(f"layer '{layer.name}' joins blobs of different spacings "
                               f"({', '.join(layer.bottom)}) after rarefaction")
    return found.pop()


def _rarefy_window(layer: caffe_pb2.LayerParameter,
                   state: _State) -> tuple[Change | None, _State]:
    """Rarefy one Convolution or Pooling in place: keep what stride the budget allows, dilate
    its kernel and pad by the spacing of its input, and pass on the spacing it leaves."""
    is_conv = layer.type == "Convolution"
    p = layer.convolution_param if is_conv else layer.pooling_param
    if not is_conv and p.global_pooling:
        raise RarefactionError(f"Pooling '{layer.name}' is global: its output has no grid to "
                               "make finer")
    old = netgraph.conv_kernel(p) if is_conv else netgraph.pool_kernel(p, (1, 1, 1, 1))
    kept = tuple(math.gcd(s, b) for s, b in zip(old.stride, state.budget))
    # A 1-tap axis reads one position whatever the spacing: its dilation stays.
    dilation = tuple(d * k if size > 1 else d
                     for d, k, size in zip(old.dilation, state.dilation, old.kernel))
    pad = tuple(q * k for q, k in zip(old.pad, state.dilation))
    _set_window(p, is_conv, kept, dilation, pad)
    after = _State(tuple(k * s // g for k, s, g in zip(state.dilation, old.stride, kept)),
                   tuple(b // g for b, g in zip(state.budget, kept)))
    if (kept, dilation, pad) == (old.stride, old.dilation, old.pad):
        return None, after
    return Change(layer.name, layer.type, (old.stride, kept), (old.dilation, dilation),
                  (old.pad, pad)), after


def _set_window(p, is_conv: bool, stride: Pair, dilation: Pair, pad: Pair) -> None:
    """Write stride, dilation and pad into a Convolution or Pooling parameter, replacing the
    repeated or _h/_w fields it had (a Pooling's fields are single values)."""
    for field in ("stride", "stride_h", "stride_w", "pad", "pad_h", "pad_w", "dilation"):
        p.ClearField(field)
    if stride != (1, 1):
        p.stride_h, p.stride_w = stride
    if pad != (0, 0):
        p.pad_h, p.pad_w = pad
    if dilation != (1, 1):
        p.dilation.extend(dilation if dilation[0] != dilation[1] else dilation[:1])


def verify_rarefaction(net: CaffeNet, rarefied: Rarefaction, data: np.ndarray,
                       engine: str | None = None) -> Verification:
    """Run both nets on `data` and compare their scores where the fine grid meets the native
    one, at the cells whose whole window lies inside the input (the others see padding,
    which the two grids meet at different places)."""
    from viewer.engines import DEFAULT_ENGINE, create_engine

    name = engine or DEFAULT_ENGINE
    blob = netgraph.score_blob(net.param)
    native = create_engine(name, net).forward(data, [blob])[blob]
    fine = create_engine(name, rarefied.net).forward(data, [blob])[blob]
    factor = tuple(s // rarefied.stride for s in rarefied.native)
    rows, cols = geometry_of(net, blob).cells_inside(*data.shape[2:])
    expected = native[:, :, rows.start:rows.stop, cols.start:cols.stop]
    got = fine[:, :, rows.start * factor[0]:(rows.stop - 1) * factor[0] + 1:factor[0],
               cols.start * factor[1]:(cols.stop - 1) * factor[1] + 1:factor[1]]
    if got.shape != expected.shape:
        raise RarefactionError(f"the rarefied net gives {got.shape} cells where the native one "
                               f"gives {expected.shape}")
    largest = float(np.abs(expected).max()) if expected.size else 0.0
    diff = float(np.abs(got - expected).max()) if expected.size else 0.0
    return Verification(diff, len(data), name, largest)
