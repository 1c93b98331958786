"""The layers of a net as it runs in the TEST phase: input shapes, blob shapes, parameter shapes.

This is Caffe's own arithmetic (output sizes with ceil-rounded pooling, InnerProduct flattening
its input), written once so that surgery, geometry, validation and the numpy engine agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from viewer.caffe.model_io import MAX_BLOB_ELEMENTS, count_text, shape_text
from viewer.caffe.proto import caffe_pb2
from viewer.errors import BlobTooLarge, ModelError

Shape = tuple[int, ...]

# Layer types that carry data through the deploy net; anything else is named as unsupported.
RUNNABLE = {
    "Input", "Convolution", "Pooling", "InnerProduct", "ReLU", "Dropout", "Softmax", "Power",
    "Scale", "LRN", "Concat", "Flatten", "Split",
    "BatchNorm", "Eltwise", "Sigmoid", "TanH", "PReLU", "ELU", "AbsVal", "BNLL",
}
# Layers of train/test nets that a deploy run leaves out.
TRAINING_ONLY = {"Data", "SoftmaxWithLoss", "Accuracy", "ImageData", "MemoryData", "HDF5Data"}
# Layers whose output is their input spatially: they leave the geometry unchanged.
ELEMENTWISE = {"ReLU", "Dropout", "Softmax", "Power", "Scale", "LRN", "Split", "Concat",
               "BatchNorm", "Eltwise", "Sigmoid", "TanH", "PReLU", "ELU", "AbsVal", "BNLL"}



@dataclass(frozen=True)
class Kernel:
    """Kernel, stride, pad and dilation of a spatial layer along (y, x)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)

    @property
    def extent(self) -> tuple[int, int]:
        """The span the dilated kernel covers."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))


def _pick(values, h_field: int, w_field: int, default: int) -> tuple[int, int]:
    if h_field or w_field:
        return (h_field, w_field)
    values = list(values)
    if not values:
        return (default, default)
    return (values[0], values[-1])


def conv_kernel(p: caffe_pb2.ConvolutionParameter) -> Kernel:
    """Kernel/stride/pad of a Convolution layer, from the repeated or the _h/_w fields."""
    kernel = _pick(p.kernel_size, p.kernel_h, p.kernel_w, 0)
    stride = _pick(p.stride, p.stride_h, p.stride_w, 1)
    pad = _pick(p.pad, p.pad_h, p.pad_w, 0)
    dilation = _pick(p.dilation, 0, 0, 1)
    return Kernel(kernel, stride, pad, dilation)


def pool_kernel(p: caffe_pb2.PoolingParameter, bottom: Shape) -> Kernel:
    """Kernel/stride/pad of a Pooling layer; global pooling covers the whole input.

    Its dilation is 1 except in nets made by `viewer.surgery.rarefaction` (a field Caffe lacks)."""
    if p.global_pooling:
        return Kernel((bottom[2], bottom[3]), (1, 1), (0, 0))
    kernel = (p.kernel_h, p.kernel_w) if p.kernel_h else (p.kernel_size, p.kernel_size)
    stride = (p.stride_h, p.stride_w) if p.stride_h else (p.stride, p.stride)
    pad = (p.pad_h, p.pad_w) if (p.pad_h or p.pad_w) else (p.pad, p.pad)
    return Kernel(kernel, stride, pad, _pick(p.dilation, 0, 0, 1))


def pooled_size(size: int, k: int, s: int, pad: int, ceil: bool) -> int:
    """Caffe's pooling output size, including its clip of a last window starting in the pad."""
    rounding = math.ceil if ceil else math.floor
    out = int(rounding((size + 2 * pad - k) / s)) + 1
    if pad and (out - 1) * s >= size + pad:
        out -= 1
    return out


def in_test_phase(layer: caffe_pb2.LayerParameter) -> bool:
    """Caffe's include/exclude rule for the TEST phase (stages and levels are not used here)."""
    test = caffe_pb2.TEST
    if layer.include:
        return any(not r.HasField("phase") or r.phase == test for r in layer.include)
    return not any(r.HasField("phase") and r.phase == test for r in layer.exclude)


def deploy_layers(net: caffe_pb2.NetParameter) -> list[caffe_pb2.LayerParameter]:
    """The layers that run at deploy time, in order, with unsupported types named."""
    layers = [l for l in net.layer if in_test_phase(l) and l.type not in TRAINING_ONLY]
    unknown = sorted({f"'{l.name}' ({l.type})" for l in layers if l.type not in RUNNABLE})
    if unknown:
        raise ModelError(f"unsupported layer type in {', '.join(unknown)}; this viewer runs "
                         f"{', '.join(sorted(RUNNABLE))}")
    return layers


def input_shapes(net: caffe_pb2.NetParameter) -> dict[str, Shape]:
    """Declared input blobs: `input:` with `input_shape`/`input_dim`, or Input layers."""
    shapes: dict[str, Shape] = {}
    if len(net.input):
        if len(net.input_shape):
            dims = [tuple(int(d) for d in s.dim) for s in net.input_shape]
        else:
            flat = list(net.input_dim)
            if len(flat) != 4 * len(net.input):
                raise ModelError(f"net declares {len(net.input)} inputs but {len(flat)} "
                                 "input_dim values; Caffe needs 4 per input")
            dims = [tuple(flat[4 * k:4 * k + 4]) for k in range(len(net.input))]
        if len(dims) != len(net.input):
            raise ModelError(f"net declares {len(net.input)} inputs but {len(dims)} input shapes")
        shapes.update(zip(net.input, dims))
    for layer in net.layer:
        if layer.type == "Input" and in_test_phase(layer):
            for k, top in enumerate(layer.top):
                specs = layer.input_param.shape
                if not specs:
                    raise ModelError(f"Input layer '{layer.name}' has no shape")
                spec = specs[min(k, len(specs) - 1)]
                shapes[top] = tuple(int(d) for d in spec.dim)
    if not shapes:
        raise ModelError("net declares no input (no Input layer and no 'input:' field): "
                         "give the deploy prototxt, not the train/test one")
    if len(shapes) > 1:
        raise ModelError(f"net declares {len(shapes)} inputs ({', '.join(map(repr, shapes))}); "
                         "this viewer feeds one image, so it needs a net with one input")
    for name, shape in shapes.items():
        _check_size(f"input '{name}'", shape)
    return shapes


def _check_size(what: str, shape: Shape) -> None:
    if any(d <= 0 for d in shape):
        raise ModelError(f"{what} has an empty or negative shape {shape_text(shape)}")
    if math.prod(shape) > MAX_BLOB_ELEMENTS:
        raise BlobTooLarge(f"{what} would hold {count_text(math.prod(shape))} elements "
                           f"({shape_text(shape)}): too large")


def _axis(layer: caffe_pb2.LayerParameter, name: str, axis: int, ndim: int) -> int:
    """Caffe's canonical axis (negative counts from the end), or a ModelError if out of range."""
    if not -ndim <= axis < ndim:
        raise ModelError(f"layer '{layer.name}' ({layer.type}) has {name} {axis}, outside the "
                         f"{ndim} axes of its input")
    return axis % ndim


def _check_window(layer: caffe_pb2.LayerParameter, window: Kernel) -> None:
    """Refuse the kernel/stride/dilation values Caffe itself refuses (zero would divide by 0)."""
    for what, pair in (("kernel size", window.kernel), ("stride", window.stride),
                       ("dilation", window.dilation)):
        if min(pair) < 1:
            raise ModelError(f"layer '{layer.name}' ({layer.type}) has {what} "
                             f"{pair[0]}x{pair[1]}; it must be at least 1")


def _check_conv(layer: caffe_pb2.LayerParameter, bottom: Shape) -> None:
    p = layer.convolution_param
    for what in ("kernel_size", "stride", "pad", "dilation"):
        if len(getattr(p, what)) > 2:
            raise ModelError(f"Convolution '{layer.name}' gives {len(getattr(p, what))} values "
                             f"for {what}; only 2-D convolutions run here")
    _check_window(layer, conv_kernel(p))
    if p.group < 1 or bottom[1] % p.group or p.num_output % p.group:
        raise ModelError(f"Convolution '{layer.name}': {bottom[1]} input channels and "
                         f"num_output {p.num_output} do not split into {p.group} groups")


def _check_pool(layer: caffe_pb2.LayerParameter, bottom: Shape) -> None:
    p = layer.pooling_param
    if p.pool == caffe_pb2.PoolingParameter.STOCHASTIC:
        raise ModelError(f"Pooling '{layer.name}' uses STOCHASTIC pooling, which this viewer "
                         "does not run; use MAX or AVE")
    window = pool_kernel(p, bottom)
    _check_window(layer, window)
    if window.pad[0] >= window.extent[0] or window.pad[1] >= window.extent[1]:
        raise ModelError(f"Pooling '{layer.name}' pads by {window.pad[0]}x{window.pad[1]}, "
                         f"not less than its {window.extent[0]}x{window.extent[1]} kernel")


def _ip_axis(layer: caffe_pb2.LayerParameter) -> int:
    axis = layer.inner_product_param.axis
    if axis != 1:
        raise ModelError(f"InnerProduct layer '{layer.name}' uses axis {axis}; only axis 1 "
                         "(one vector per image) can be made convolutional")
    return axis


def param_shapes(layer: caffe_pb2.LayerParameter, bottom: Shape) -> list[Shape]:
    """The weight and bias shapes that a layer with this bottom shape needs."""
    if layer.type == "Convolution":
        p = layer.convolution_param
        w = conv_kernel(p)
        if bottom[1] % p.group:
            raise ModelError(f"layer '{layer.name}': {bottom[1]} channels do not split into "
                             f"{p.group} groups")
        shapes = [(p.num_output, bottom[1] // p.group) + w.kernel]
        return shapes + [(p.num_output,)] if p.bias_term else shapes
    if layer.type == "InnerProduct":
        p = layer.inner_product_param
        _ip_axis(layer)
        fan_in = math.prod(bottom[1:])
        shapes = [(fan_in, p.num_output) if p.transpose else (p.num_output, fan_in)]
        return shapes + [(p.num_output,)] if p.bias_term else shapes
    if layer.type == "Scale":
        p = layer.scale_param
        axis = _axis(layer, "axis", p.axis, len(bottom))
        if p.num_axes >= 0 and axis + p.num_axes > len(bottom):
            raise ModelError(f"Scale '{layer.name}' spans {p.num_axes} axes from axis {p.axis}, "
                             f"beyond its {len(bottom)}-D input")
        shape = bottom[axis:axis + p.num_axes] if p.num_axes >= 0 else bottom[axis:]
        return [tuple(shape)] + ([tuple(shape)] if p.bias_term else [])
    return _normalisation_params(layer, bottom)


def _normalisation_params(layer: caffe_pb2.LayerParameter, bottom: Shape) -> list[Shape]:
    """BatchNorm's mean, variance and moving-average factor; PReLU's slopes (one per channel,
    or a 0-axis scalar blob for all, as Caffe shapes it)."""
    channels = bottom[1] if len(bottom) > 1 else 1
    if layer.type == "BatchNorm":
        return [(channels,), (channels,), (1,)]
    if layer.type == "PReLU":
        return [() if layer.prelu_param.channel_shared else (channels,)]
    return []


def output_shape(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> Shape:
    """Shape of a layer's (first) top given its bottom shapes."""
    b = bottoms[0]
    kind = layer.type
    if kind == "Convolution":
        p = layer.convolution_param
        if len(b) != 4:
            raise ModelError(f"Convolution '{layer.name}' needs a 4-D input, got {b}")
        _check_conv(layer, b)
        w = conv_kernel(p)
        hw = [(b[2 + a] + 2 * w.pad[a] - w.extent[a]) // w.stride[a] + 1 for a in range(2)]
        if min(hw) < 1:
            raise ModelError(f"input {b[2]}x{b[3]} is smaller than the {w.extent[0]}x{w.extent[1]} "
                             f"kernel of '{layer.name}'")
        return (b[0], p.num_output, hw[0], hw[1])
    if kind == "Pooling":
        if len(b) != 4:
            raise ModelError(f"Pooling '{layer.name}' needs a 4-D input, got {b}")
        _check_pool(layer, b)
        p = layer.pooling_param
        w = pool_kernel(p, b)
        ceil = p.round_mode == caffe_pb2.PoolingParameter.CEIL
        hw = [pooled_size(b[2 + a], w.extent[a], w.stride[a], w.pad[a], ceil) for a in range(2)]
        # pooled_size is at least 1 when the window fits: Caffe's ceil rounding alone would
        # give one cell of a window larger than the padded input
        if w.extent[0] > b[2] + 2 * w.pad[0] or w.extent[1] > b[3] + 2 * w.pad[1]:
            raise ModelError(f"input {b[2]}x{b[3]} is smaller than the pooling window of "
                             f"'{layer.name}'")
        return (b[0], b[1], hw[0], hw[1])
    if kind == "InnerProduct":
        _ip_axis(layer)
        return (b[0], layer.inner_product_param.num_output)
    if kind == "Flatten":
        p = layer.flatten_param
        start = _axis(layer, "axis", p.axis, len(b))
        end = _axis(layer, "end_axis", p.end_axis, len(b))
        if end < start:
            raise ModelError(f"Flatten '{layer.name}' has end_axis {p.end_axis} before axis "
                             f"{p.axis}")
        return b[:start] + (math.prod(b[start:end + 1]),) + b[end + 1:]
    if kind == "Concat":
        axis = _spatially_safe(layer, "joins", layer.concat_param.axis, 1, len(b))
        for other, s in zip(layer.bottom[1:], bottoms[1:]):
            if len(s) != len(b) or s[:axis] + s[axis + 1:] != b[:axis] + b[axis + 1:]:
                raise ModelError(f"Concat '{layer.name}' joins {layer.bottom[0]} {b} and "
                                 f"{other} {s}, which differ outside axis {axis}")
        total = sum(s[axis] for s in bottoms)
        return b[:axis] + (total,) + b[axis + 1:]
    if kind == "Scale":
        p = layer.scale_param
        _spatially_safe(layer, "scales", p.axis, p.num_axes, len(b))
        if len(bottoms) > 1:
            raise ModelError(f"Scale '{layer.name}' takes its factors from a second input "
                             f"'{layer.bottom[1]}'; this viewer runs Scale with learned "
                             "factors only")
    if kind == "Eltwise":
        _check_eltwise(layer, bottoms)
    if kind == "BatchNorm":
        _check_batch_norm(layer, b)
    if kind == "Softmax":
        axis = _axis(layer, "axis", layer.softmax_param.axis, len(b))
        if len(b) == 4 and axis >= 2:          # over the batch of one it is harmless
            _spatially_safe(layer, "normalises", layer.softmax_param.axis, 1, len(b))
    if kind == "LRN":
        _check_lrn(layer, b)
    return b


AXIS_NAMES = ("images (the batch)", "channels", "height", "width")


def _spatially_safe(layer: caffe_pb2.LayerParameter, does: str, axis: int, count: int,
                    ndim: int) -> int:
    """The canonical `axis` of a Concat or Scale whose axes [axis, axis + count) avoid the
    batch and, on a 4-D blob, height and width. A dense map slides the net over the image:
    a join or a factor along height or width is tied to the classifier's window size and does
    not slide with it, so the map would differ from the classifier on the very windows it
    claims to show, while the surgery check, whose classifier-sized inputs give a map of one
    cell, cannot tell. Along the batch, one image becomes two."""
    start = _axis(layer, "axis", axis, ndim)
    end = ndim if count < 0 else start + count
    spans = [AXIS_NAMES[a] if ndim == 4 else f"axis {a}" for a in range(start, end)
             if a == 0 and count != 0 or ndim == 4 and a >= 2]
    if spans:
        raise ModelError(f"{layer.type} '{layer.name}' {does} along {' and '.join(spans)} "
                         f"(axis {axis}); a dense map slides the net over the image, which only "
                         "channels (axis 1) follow: this viewer runs "
                         f"{layer.type} along channels only")
    return start


def _check_eltwise(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> None:
    """Caffe's Eltwise needs two or more inputs of one shape, and coefficients only for SUM,
    one per input."""
    if len(bottoms) < 2:
        raise ModelError(f"Eltwise '{layer.name}' has {len(bottoms)} input; it needs at least 2")
    for other, s in zip(layer.bottom[1:], bottoms[1:]):
        if s != bottoms[0]:
            raise ModelError(f"Eltwise '{layer.name}' combines {layer.bottom[0]} {bottoms[0]} "
                             f"and {other} {s}; its inputs must have the same shape")
    p = layer.eltwise_param
    if len(p.coeff) and p.operation != caffe_pb2.EltwiseParameter.SUM:
        raise ModelError(f"Eltwise '{layer.name}' gives coefficients to a "
                         f"{caffe_pb2.EltwiseParameter.EltwiseOp.Name(p.operation)}; "
                         "only SUM takes them")
    if len(p.coeff) and len(p.coeff) != len(bottoms):
        raise ModelError(f"Eltwise '{layer.name}' has {len(p.coeff)} coefficients for "
                         f"{len(bottoms)} inputs; give one per input")


def _check_batch_norm(layer: caffe_pb2.LayerParameter, bottom: Shape) -> None:
    """A deploy net normalises with the stored statistics; batch statistics of one image would
    make every map cell depend on the whole image."""
    p = layer.batch_norm_param
    if p.HasField("use_global_stats") and not p.use_global_stats:
        raise ModelError(f"BatchNorm '{layer.name}' sets use_global_stats: false; this viewer "
                         "normalises with the stored statistics only (remove the setting)")
    if len(bottom) < 2:
        raise ModelError(f"BatchNorm '{layer.name}' needs an input with a channel axis, "
                         f"got {bottom}")
    if not p.eps > 0:          # NaN and 0 included: var + eps must stay above 0
        raise ModelError(f"BatchNorm '{layer.name}' has eps {p.eps:g}; it must be greater "
                         "than 0 (a channel of zero variance would divide by zero)")


def _check_lrn(layer: caffe_pb2.LayerParameter, bottom: Shape) -> None:
    """Caffe's LRN CHECKs: an odd local_size and a 4-D input."""
    size = layer.lrn_param.local_size
    if size % 2 == 0:
        raise ModelError(f"LRN '{layer.name}': local_size {size} must be odd (Caffe's LRN "
                         "sums over 1, 3, 5, ... neighbours)")
    if len(bottom) != 4:
        raise ModelError(f"LRN '{layer.name}' needs a 4-D input, got {shape_text(bottom)}")


def infer_shapes(net: caffe_pb2.NetParameter,
                 inputs: dict[str, Shape] | None = None) -> dict[str, Shape]:
    """Every blob's shape, given input shapes (the declared ones by default)."""
    shapes = dict(inputs or input_shapes(net))
    made_by = {name: "the net's input" for name in shapes}
    for layer in deploy_layers(net):
        if layer.type == "Input":
            continue
        _check_tops(layer, made_by)
        if not layer.bottom or not layer.top:
            raise ModelError(f"layer '{layer.name}' ({layer.type}) has no "
                             f"{'bottom' if not layer.bottom else 'top'} blob")
        missing = [b for b in layer.bottom if b not in shapes]
        if missing:
            raise ModelError(f"layer '{layer.name}' reads blob '{missing[0]}', which no earlier "
                             "layer produces")
        out = output_shape(layer, [shapes[b] for b in layer.bottom])
        _check_size(f"output of layer '{layer.name}'", out)
        for top in layer.top:
            shapes[top] = out
    return shapes


def _check_tops(layer: caffe_pb2.LayerParameter, made_by: dict[str, str]) -> None:
    """Caffe's rule for top blobs: each is new, or rewrites in place the bottom of the same
    index. Anything else (two layers writing each other's inputs) would make a cycle."""
    for k, top in enumerate(layer.top):
        in_place = k < len(layer.bottom) and layer.bottom[k] == top
        if top in made_by and not in_place:
            raise ModelError(f"layer '{layer.name}' ({layer.type}) writes blob '{top}', which "
                             f"{made_by[top]} already produced; Caffe allows that only in place "
                             "(top k = bottom k), otherwise the net has a cycle")
        made_by.setdefault(top, f"layer '{layer.name}'")


def producers(net: caffe_pb2.NetParameter) -> dict[str, caffe_pb2.LayerParameter]:
    """For each blob, the last layer that writes it (in-place layers win, as in Caffe)."""
    found = {}
    for layer in deploy_layers(net):
        for top in layer.top:
            found[top] = layer
    return found


def score_blob(net: caffe_pb2.NetParameter) -> str:
    """The class-score blob: the net's last output, or the input of a final Softmax."""
    layers = [l for l in deploy_layers(net) if l.type != "Input"]
    if not layers:
        raise ModelError("net has no layers after its input")
    last = layers[-1]
    if last.type == "Softmax":
        return last.bottom[0]
    return last.top[0]



def creators(net: caffe_pb2.NetParameter) -> dict[str, caffe_pb2.LayerParameter]:
    """For each blob, the layer that creates it; in-place layers after it only modify it."""
    found: dict[str, caffe_pb2.LayerParameter] = {}
    for layer in deploy_layers(net):
        for k, top in enumerate(layer.top):
            if k >= len(layer.bottom) or layer.bottom[k] != top:
                found.setdefault(top, layer)
    return found
