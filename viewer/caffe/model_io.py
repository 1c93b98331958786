"""Caffe model files: `.prototxt` (text NetParameter) and `.caffemodel` (binary NetParameter).

A `CaffeNet` is a net's structure plus its weights as numpy arrays keyed by layer name, the
same vocabulary as pycaffe's `net.params`. Reading upgrades the pre-2015 `layers {}` format
and turns every way a file can be broken into a `ModelError` that names the file and layer.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf import message as pb_message
from google.protobuf import text_format

from viewer.errors import ModelError
from viewer.caffe.proto import caffe_pb2
from viewer.caffe.unknown_fields import find_unknown_fields, unknown_fields_text
from viewer.files.safe_read import read_regular
from viewer.files.safe_write import Writer, write_together

# A blob larger than this many elements is refused before anything is allocated.
MAX_BLOB_ELEMENTS = 1 << 31
# Files larger than these are refused before they are read: the deepest prototxts are a few
# hundred KB, the largest classic caffemodel (VGG-16) 528 MB.
MAX_PROTOTXT_BYTES = 64 << 20
MAX_CAFFEMODEL_BYTES = 1 << 30

_V1_TYPES = {
    "CONVOLUTION": "Convolution", "POOLING": "Pooling", "INNER_PRODUCT": "InnerProduct",
    "RELU": "ReLU", "DROPOUT": "Dropout", "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "POWER": "Power", "LRN": "LRN", "CONCAT": "Concat", "FLATTEN": "Flatten", "DATA": "Data",
    "ACCURACY": "Accuracy", "SPLIT": "Split", "SIGMOID": "Sigmoid", "TANH": "TanH",
    "ELTWISE": "Eltwise", "ABSVAL": "AbsVal", "BNLL": "BNLL",
}
_V1_PARAMS = (
    "accuracy_param", "concat_param", "convolution_param", "data_param", "dropout_param",
    "eltwise_param", "inner_product_param", "lrn_param", "pooling_param", "power_param", "relu_param",
    "softmax_param", "transform_param", "loss_param",
)


def shape_text(shape: tuple[int, ...]) -> str:
    """A shape for a message: in full, or its rank and largest dimension when that is long."""
    text = "x".join(map(str, shape))
    return text if len(text) <= 60 else f"{len(shape)}-D, dimensions up to {max(shape)}"


def count_text(count: int) -> str:
    """An element count for a message, without printing hundreds of digits."""
    return str(count) if count < 10 ** 18 else f"over 10^{len(str(count)) - 1}"


@dataclass
class CaffeNet:
    """A net's layers (without blobs) and its weights, one list of arrays per layer name."""

    param: caffe_pb2.NetParameter
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    source: str = "<memory>"
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.param.name


_LEGACY_FIELDS = ("num", "channels", "height", "width")


def is_legacy_blob(blob: caffe_pb2.BlobProto) -> bool:
    """True when the blob sets any of the pre-2015 num/channels/height/width fields: Caffe
    (Blob::ShapeEquals) then reads those and ignores `shape`."""
    return any(blob.HasField(f) for f in _LEGACY_FIELDS)


def blob_shape(blob: caffe_pb2.BlobProto) -> tuple[int, ...]:
    """The blob's Caffe shape: the legacy num/channels/height/width when set, else `shape`."""
    if is_legacy_blob(blob):
        return tuple(getattr(blob, f) for f in _LEGACY_FIELDS)
    return tuple(int(d) for d in blob.shape.dim)


def blob_to_array(blob: caffe_pb2.BlobProto, what: str = "blob") -> np.ndarray:
    """Decode a BlobProto into a float32 array of its Caffe shape."""
    shape = blob_shape(blob)
    if any(d < 0 for d in shape):
        raise ModelError(f"{what} has a negative dimension ({shape_text(shape)})")
    count = math.prod(shape)
    if count > MAX_BLOB_ELEMENTS:
        raise ModelError(f"{what} declares {count_text(count)} elements "
                         f"({shape_text(shape)}), more than this viewer loads")
    data = blob.double_data if len(blob.double_data) else blob.data
    if len(data) != count:
        raise ModelError(f"{what} has {len(data)} values but its shape {shape} needs {count} "
                         "(is the file truncated?)")
    with np.errstate(over="ignore"):  # doubles beyond float32 become inf, refused below
        array = np.asarray(data, dtype=np.float32).reshape(shape)
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ModelError(f"{what} holds {bad} NaN or infinite values (weights of a diverged "
                         "training, or a damaged file)")
    return array


def array_to_blob(array: np.ndarray) -> caffe_pb2.BlobProto:
    """Encode an array as a BlobProto with the modern `shape` field."""
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(int(d) for d in array.shape)
    blob.data.extend(np.ascontiguousarray(array, dtype=np.float32).ravel().tolist())
    return blob


def _layer_at_line(text: str, line: int) -> str | None:
    """Name of the layer whose block contains 1-based `line`, for error messages."""
    name, in_layer = None, False
    for row in text.splitlines()[:line]:
        if re.search(r"\blayers?\s*:?\s*\{", row):
            name, in_layer = None, True
        found = re.search(r"""\bname\s*:\s*["']([^"']*)["']""", row)
        if found and in_layer and name is None:
            name = found.group(1)
    return name


# Control characters that never occur in a text prototxt but fill binary files.
_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f]")


def _parse_error(source: str, text: str, err: text_format.ParseError) -> ModelError:
    line = err.GetLine()
    layer = _layer_at_line(text, line) if line else None
    where = f"{source}" + (f" line {line}" if line else "")
    in_layer = f" (in layer '{layer}')" if layer else ""
    reason = re.sub(r"^\d+:\d+ : ", "", str(err)).replace("netsurgery.caffe.", "")
    unknown = re.match(r'Message type "(\w+)" has no field named "(\w+)"', reason)
    if unknown:
        reason = f"unknown field '{unknown.group(2)}' in {unknown.group(1)}"
    return ModelError(f"{where}{in_layer}: {reason}")


def parse_prototxt(text: str, source: str = "<prototxt>") -> tuple[caffe_pb2.NetParameter, list[str]]:
    """Parse prototxt text. An unknown field is refused as real Caffe refuses it, with every
    unknown field of the file in the one message (and the known field nearest each); the list
    of warnings stays for what a reader may skip and still run the net as meant (none now)."""
    if _BINARY.search(text):
        raise ModelError(f"{source} is not a text prototxt (it holds binary data: "
                         "a .caffemodel given as --prototxt?)")
    if text.startswith("\ufeff"):
        raise ModelError(f"{source} starts with a byte-order mark, which Caffe cannot read: "
                         "save it as UTF-8 without BOM")
    net = caffe_pb2.NetParameter()
    try:
        try:
            text_format.Parse(text, net)
        except text_format.ParseError as err:
            if "has no field named" not in str(err):
                raise _parse_error(source, text, err) from None
            unknown = find_unknown_fields(text, caffe_pb2.NetParameter.DESCRIPTOR)
            if not unknown:
                raise _parse_error(source, text, err) from None
            raise ModelError(unknown_fields_text(source, unknown)) from None
    except RecursionError:
        raise ModelError(f"{source} nests blocks too deeply to be a Caffe net "
                         "(unbalanced braces?)") from None
    return upgrade_v1(net, source), []


def _is_utf16(raw: bytes) -> bool:
    """UTF-16 text (Windows editors save it): a byte-order mark, or ASCII with every other
    byte zero, that decodes as UTF-16 to text without control characters."""
    head = raw[:256]
    marked = head.startswith((b"\xff\xfe", b"\xfe\xff"))
    ascii_pairs = len(head) >= 8 and (not any(head[1::2]) and all(head[0::2]) or
                                      not any(head[0::2]) and all(head[1::2]))
    if not (marked or ascii_pairs):
        return False
    codec = "utf-16" if marked else ("utf-16-le" if not any(head[1::2]) else "utf-16-be")
    try:
        return not _BINARY.search(raw.decode(codec))
    except UnicodeDecodeError:
        return False


def read_prototxt(path: str | os.PathLike) -> tuple[caffe_pb2.NetParameter, list[str]]:
    """Read a `.prototxt` file; see `parse_prototxt`."""
    path = Path(path)
    try:
        raw = read_regular(path, MAX_PROTOTXT_BYTES, "prototxt")
    except OSError as err:
        raise ModelError(f"cannot read prototxt {path}: {err.strerror or err}") from None
    if _is_utf16(raw):
        raise ModelError(f"{path} is UTF-16 text; Caffe reads a prototxt as UTF-8: save it as "
                         "UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path} is not a text prototxt (it holds binary data: "
                         "a .caffemodel given as --prototxt?)") from None
    return parse_prototxt(text, str(path))


def _looks_like_text(data: bytes) -> bool:
    """True for UTF-8 text without binary control characters: a prototxt, not a caffemodel."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text.strip()) and not _BINARY.search(text)


def parse_caffemodel(data: bytes, source: str = "<caffemodel>") -> caffe_pb2.NetParameter:
    """Parse binary caffemodel bytes into a NetParameter that still holds its blobs."""
    if _looks_like_text(data):
        raise ModelError(f"{source} is a text file, not a binary caffemodel (a .prototxt "
                         "given as --weights?)")
    if not data:
        raise ModelError(f"{source} is empty (0 bytes): download or copy the caffemodel again")
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(data)
    except (pb_message.DecodeError, RuntimeError, ValueError) as err:
        raise ModelError(f"{source} is not a valid caffemodel (truncated or not a Caffe "
                         f"binary file: {err})") from None
    net = upgrade_v1(net, source)
    if not any(len(layer.blobs) for layer in net.layer):
        raise ModelError(f"{source} holds no weights: not a caffemodel, or an empty one")
    return net


def read_caffemodel(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """Read a `.caffemodel`; see `parse_caffemodel`."""
    path = Path(path)
    try:
        data = read_regular(path, MAX_CAFFEMODEL_BYTES, "caffemodel")
    except OSError as err:
        raise ModelError(f"cannot read caffemodel {path}: {err.strerror or err}") from None
    return parse_caffemodel(data, str(path))


def upgrade_v1(net: caffe_pb2.NetParameter, source: str) -> caffe_pb2.NetParameter:
    """Convert pre-2015 `layers { type: CONVOLUTION }` entries to modern `layer {}` entries."""
    if not len(net.layers):
        return net
    if len(net.layer):
        raise ModelError(f"{source} mixes old 'layers' and new 'layer' entries")
    upgraded = caffe_pb2.NetParameter()
    upgraded.CopyFrom(net)
    del upgraded.layers[:]
    for old in net.layers:
        type_name = caffe_pb2.V1LayerParameter.LayerType.Name(old.type)
        if type_name not in _V1_TYPES:
            raise ModelError(f"{source}: old-format layer '{old.name}' has type {type_name}, "
                             "which this viewer cannot upgrade")
        new = upgraded.layer.add(name=old.name, type=_V1_TYPES[type_name])
        new.bottom.extend(old.bottom)
        new.top.extend(old.top)
        new.include.extend(old.include)
        new.exclude.extend(old.exclude)
        new.blobs.extend(old.blobs)
        new.loss_weight.extend(old.loss_weight)
        for name in _V1_PARAMS:
            if old.HasField(name):
                getattr(new, name).CopyFrom(getattr(old, name))
    return upgraded


def structure_of(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """A copy of the net without blobs: what a prototxt holds (old `layers` entries too)."""
    bare = caffe_pb2.NetParameter()
    bare.CopyFrom(net)
    for layer in [*bare.layer, *bare.layers]:
        del layer.blobs[:]
    return bare


def weights_of(net: caffe_pb2.NetParameter, source: str) -> dict[str, list[np.ndarray]]:
    """Decode every layer's blobs into arrays, keyed by layer name."""
    return {
        layer.name: [blob_to_array(b, f"{source}: layer '{layer.name}' blob {k}")
                     for k, b in enumerate(layer.blobs)]
        for layer in net.layer if len(layer.blobs)
    }


def legacy_blobs(net: caffe_pb2.NetParameter) -> set[tuple[str, int]]:
    """(layer name, blob index) of the blobs stored with the legacy 4-D fields, which Caffe
    matches to a shape of up to 4 axes padded with leading 1s (1 x 1 x M x N for an
    InnerProduct's M x N weights)."""
    return {(layer.name, k) for layer in net.layer for k, b in enumerate(layer.blobs)
            if is_legacy_blob(b)}


def to_netparameter(net: CaffeNet) -> caffe_pb2.NetParameter:
    """The net with its weights embedded, as a caffemodel holds it."""
    full = structure_of(net.param)
    for layer in full.layer:
        for array in net.weights.get(layer.name, []):
            layer.blobs.append(array_to_blob(array))
    return full


def prototxt_text(param: caffe_pb2.NetParameter) -> str:
    """Text format of a structure, as Caffe writes it."""
    return text_format.MessageToString(structure_of(param))


def caffemodel_bytes(net: CaffeNet) -> bytes:
    """Binary caffemodel of a net."""
    return to_netparameter(net).SerializeToString()


def net_writers(net: CaffeNet, prototxt_path: str | os.PathLike,
                weights_path: str | os.PathLike) -> list[tuple[str | os.PathLike, Writer]]:
    """The prototxt and caffemodel of `net` as `safe_write.write_together` entries, for
    callers that write more files with the pair (the preprocessing sidecar)."""
    text, model = prototxt_text(net.param).encode("utf-8"), caffemodel_bytes(net)
    return [(prototxt_path, lambda fh: fh.write(text)),
            (weights_path, lambda fh: fh.write(model))]


def write_net(net: CaffeNet, prototxt_path: str | os.PathLike, weights_path: str | os.PathLike,
              inputs: tuple = ()) -> None:
    """Write a prototxt and caffemodel pair atomically and together (both or neither: a new
    prototxt beside an old caffemodel would not load), never over one of `inputs`."""
    write_together(net_writers(net, prototxt_path, weights_path), inputs)
