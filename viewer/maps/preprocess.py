"""Preprocessing as Caffe defines it: one small object, like pycaffe's `caffe.io.Transformer`.

A net sees its image after these steps, in this order (`caffe.io.Transformer.preprocess`):
RGB pixels -> resize to the scale -> channel swap -> raw scale -> subtract a per-channel mean ->
input scale. The defaults are those of Caffe's `python/classify.py`: a 3-channel net gets BGR
(swap 2,1,0) pixels 0-255 and no mean; a 1-channel net gets gray pixels 0-255.

Settings given once stay with the model: `surgery --out` writes them in a sidecar JSON file
beside the fully convolutional prototxt (`sidecar_path`), and loading that net reads them back.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from viewer.maps import labels as labels_mod
from viewer.net import netgraph
from viewer.errors import PreprocessError, ViewerError, shown
from viewer.maps.images import rescale, to_gray
from viewer.caffe.model_io import (MAX_CAFFEMODEL_BYTES, MAX_PROTOTXT_BYTES, CaffeNet,
                             blob_to_array, net_writers, read_prototxt)
from viewer.caffe.proto import caffe_pb2
from viewer.files.safe_read import read_regular
from viewer.files.safe_write import write_together

FULL_RANGE = 255.0          # our images are uint8: Caffe's [0, 1] pixel times 255
SIDECAR_SUFFIX = ".preprocess.json"
SIDECAR_FORMAT = "netsurgery-preprocess/1"



@dataclass(frozen=True)
class Transformer:
    """How pixels become a net's input (pycaffe's Transformer, for one input blob).

    `channel_swap[k]` is the RGB channel that becomes the net's channel k; `mean` holds one
    value per net channel, in the net's channel order (after the swap), as Caffe subtracts it.
    Empty `channel_swap` or `mean` means none.
    """

    channels: int
    channel_swap: tuple[int, ...] = ()
    raw_scale: float = FULL_RANGE
    mean: tuple[float, ...] = ()
    input_scale: float = 1.0

    def __post_init__(self) -> None:
        check_transformer(self)

    @classmethod
    def default_for(cls, channels: int) -> "Transformer":
        """classify.py's defaults: BGR for 3-channel nets, gray otherwise, pixels 0-255."""
        return cls(channels, (2, 1, 0) if channels == 3 else ())

    @property
    def color(self) -> bool:
        """True when the net reads the image's colours (3 channels), not its gray."""
        return self.channels == 3

    def pixels(self, image: np.ndarray, scale: float) -> np.ndarray:
        """The resized uint8 image the net sees: H x W x 3 RGB for colour nets, else gray."""
        if self.color:
            rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
            return rescale(rgb, scale)
        return rescale(to_gray(image), scale)

    def prepare(self, image: np.ndarray, scale: float) -> np.ndarray:
        """1 x C x H x W float32 net input from an RGB or gray uint8 image at `scale`."""
        return self.transform(self.pixels(image, scale))

    def transform(self, pixels: np.ndarray) -> np.ndarray:
        """The steps after resizing, on an already resized uint8 image (see `pixels`)."""
        if pixels.ndim == 3:
            data = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)
            if self.channel_swap:
                data = data[list(self.channel_swap)]
        else:
            # Nets of 2 or 4+ channels have no Caffe default: they get the gray copied, as before.
            data = np.repeat(pixels.astype(np.float32)[None], self.channels, axis=0)
        if self.raw_scale != FULL_RANGE:
            data *= np.float32(self.raw_scale / FULL_RANGE)
        if self.mean:
            data -= np.asarray(self.mean, np.float32)[:, None, None]
        if self.input_scale != 1.0:
            data *= np.float32(self.input_scale)
        return data[None]

    def as_dict(self) -> dict:
        """The settings as the sidecar and `--json` reports hold them."""
        return {"channels": self.channels, "channel_swap": list(self.channel_swap),
                "raw_scale": self.raw_scale, "mean": list(self.mean),
                "input_scale": self.input_scale}

    def describe(self) -> str:
        """One line for people: "BGR (swap 2,1,0), raw scale 255, mean 104,117,123"."""
        if self.color:
            order = "".join("RGB"[k] for k in self.channel_swap or (0, 1, 2))
            parts = [f"{order} (swap {','.join(map(str, self.channel_swap))})"
                     if self.channel_swap else order]
        else:
            parts = ["gray" if self.channels == 1 else f"gray x {self.channels} channels"]
        parts.append(f"raw scale {self.raw_scale:g}")
        parts.append(f"mean {','.join(f'{v:g}' for v in self.mean)}" if self.mean else "no mean")
        if self.input_scale != 1.0:
            parts.append(f"input scale {self.input_scale:g}")
        return ", ".join(parts)


def check_transformer(t: Transformer) -> None:
    """Refuse settings that cannot apply to a `t.channels`-channel net, naming the flag."""
    if t.channel_swap and t.channels != 3:
        raise PreprocessError(f"--channel-swap needs a 3-channel net; this one has "
                              f"{t.channels} input channel(s)")
    if t.channel_swap and sorted(t.channel_swap) != [0, 1, 2]:
        raise PreprocessError(f"--channel-swap {','.join(map(str, t.channel_swap))} is not a "
                              "permutation of the channels 0,1,2 (e.g. 2,1,0 for BGR)")
    for flag, value in (("--raw-scale", t.raw_scale), ("--input-scale", t.input_scale)):
        if not (math.isfinite(value) and value > 0):
            raise PreprocessError(f"{flag} must be a positive number, got {value:g}")
    for flag, values in (("--raw-scale", (t.raw_scale,)), ("--input-scale", (t.input_scale,)),
                         ("--mean", t.mean)):
        if any(abs(v) > FLOAT32_MAX / 256 or 0 < abs(v) < 1 / FLOAT32_MAX for v in values):
            raise PreprocessError(f"{flag} {','.join(f'{v:g}' for v in values)} is beyond what "
                                  "the net's float32 pixels hold (every pixel would overflow "
                                  "to infinity or round to 0): use a value within 1e-38 to 1e36")
    if t.mean and len(t.mean) != t.channels:
        raise PreprocessError(f"--mean has {len(t.mean)} value(s) but the net has {t.channels} "
                              "input channel(s); give one value per channel, in the net's "
                              "channel order")
    if not all(math.isfinite(v) for v in t.mean):
        raise PreprocessError("--mean values must be finite numbers")


# The largest float32: the pixels the net reads are float32, and a factor near it turns every
# pixel into infinity (and numpy's overflow warnings, one per image).
FLOAT32_MAX = float(np.finfo(np.float32).max)


# ---- means ---------------------------------------------------------------------------------

def channel_means(array: np.ndarray, source: str) -> tuple[float, ...]:
    """Per-channel means of a mean image (C x H x W, 1 x C x H x W, H x W) or a vector (C),
    as Caffe's net_surgery notebook reduces `ilsvrc_2012_mean.npy`."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 1:
        return tuple(float(v) for v in array)
    if array.ndim != 3 or array.size == 0:
        raise PreprocessError(f"--mean {source}: expected a C x H x W mean image or one value "
                              f"per channel, got an array of shape {array.shape}")
    return tuple(float(v) for v in array.reshape(array.shape[0], -1).mean(axis=1))


def read_mean_file(path: str | os.PathLike) -> tuple[float, ...]:
    """Per-channel means of a `mean.binaryproto` (Caffe's BlobProto) or `.npy` mean image."""
    path = Path(path)
    try:
        data = read_regular(path, MAX_CAFFEMODEL_BYTES, "mean file")
    except OSError as err:
        raise PreprocessError(f"--mean {path} cannot be read ({err.strerror or err})") from None
    if path.suffix.lower() == ".npy":
        array = _npy_mean(data, path)
    else:
        blob = caffe_pb2.BlobProto()
        try:
            blob.ParseFromString(data)
            array = blob_to_array(blob, f"mean file {path}")
        except ViewerError as err:
            raise PreprocessError(f"--mean {path}: {err}") from None
        except Exception as err:  # protobuf's DecodeError and friends
            raise PreprocessError(f"--mean {path} is not a mean.binaryproto ({err})") from None
    return channel_means(array, str(path))


def _npy_mean(data: bytes, path: Path) -> np.ndarray:
    """The array of a `.npy` mean, its header checked before any element is read: numbers
    only (not text, dates, complex or structured records), some values, and no more than the
    file holds (a 192-byte header may declare petabytes)."""
    import io

    from numpy.lib import format as npy

    def refuse(why: str) -> PreprocessError:
        return PreprocessError(f"--mean {path} {why}")
    stream = io.BytesIO(data)
    try:
        version = npy.read_magic(stream)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else \
            npy.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as err:
        raise refuse(f"is not a NumPy .npy array ({err})") from None
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise refuse(f"holds {dtype} values, not numbers: a mean is integers or floats")
    count = math.prod(shape)
    if count == 0:
        raise refuse(f"is empty (shape {shape}): give a mean per channel or a mean image")
    if count * dtype.itemsize > len(data):
        raise refuse(f"declares {shape} {dtype} values, more than its {len(data)} bytes hold")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise refuse(f"is not a NumPy .npy array ({err})") from None


def parse_mean(text: str) -> tuple[float, ...]:
    """`--mean`: "104,117,123" (values in the net's channel order), a mean file, or "none"."""
    if text.strip().lower() in ("none", ""):
        return ()
    if Path(text).suffix.lower() in (".npy", ".binaryproto") or Path(text).is_file():
        return read_mean_file(text)
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise PreprocessError(f"--mean '{text}' is neither numbers like 104,117,123 nor a "
                              ".binaryproto/.npy file") from None


def parse_channel_swap(text: str) -> tuple[int, ...]:
    """`--channel-swap`: "2,1,0"; "none" keeps RGB."""
    if text.strip().lower() in ("none", ""):
        return ()
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise PreprocessError(f"--channel-swap '{text}' is not a list of channel numbers like "
                              "2,1,0") from None


def parse_number(flag: str, text: str) -> float:
    """A positive scale for `flag`; a fraction like 1/256 is accepted too."""
    try:
        top, _, bottom = text.partition("/")
        value = float(top) / float(bottom) if bottom else float(top)
    except (ValueError, ZeroDivisionError):
        raise PreprocessError(f"{flag} '{text}' is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise PreprocessError(f"{flag} must be a positive number, got {text}")
    return value


# ---- a train_val net's transform_param -------------------------------------------------------

@dataclass(frozen=True)
class TrainTransform:
    """What a train_val net's data layer does to pixels: Caffe's DataTransformer subtracts the
    mean and multiplies by `scale` (our input scale). Its images come from the LMDB already in
    the net's channel order, so nothing here swaps channels."""

    input_scale: float = 1.0
    mean: tuple[float, ...] = ()
    layer: str = ""


def read_train_transform(path: str | os.PathLike) -> TrainTransform:
    """The `transform_param` of a train_val prototxt's TEST data layer (else its first one).

    A `mean_file` is read relative to the prototxt's folder, then to the current folder (where
    `caffe train` usually ran).
    """
    path = Path(path)
    try:
        param, _ = read_prototxt(path)
    except ViewerError as err:
        raise PreprocessError(f"--train-prototxt: {err}") from None
    layers = [l for l in param.layer if l.HasField("transform_param")]
    if not layers:
        raise PreprocessError(f"--train-prototxt {path} has no data layer with a "
                              "transform_param")
    test = [l for l in layers if any(rule.phase == 1 for rule in l.include)]
    layer = (test or layers)[0]
    tp = layer.transform_param
    mean: tuple[float, ...] = tuple(float(v) for v in tp.mean_value)
    if tp.mean_file:
        found = next((p for p in (path.parent / tp.mean_file, Path(tp.mean_file))
                      if p.is_file()), None)
        if found is None:
            raise PreprocessError(f"--train-prototxt {path}: its mean_file {tp.mean_file} is "
                                  f"not found beside it nor in the current folder")
        mean = read_mean_file(found)
    if not (tp.scale > 0):
        raise PreprocessError(f"--train-prototxt {path}: layer '{layer.name}' has scale "
                              f"{tp.scale:g}; it must be positive")
    return TrainTransform(float(tp.scale), mean, layer.name)


# ---- the sidecar ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSettings:
    """What a net needs besides its files: its preprocessing and, when known, class names."""

    transformer: Transformer
    labels: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)   # warnings for the user

    def with_transformer(self, transformer: Transformer) -> "ModelSettings":
        return replace(self, transformer=transformer)


def sidecar_path(prototxt: str | os.PathLike) -> Path:
    """`net.prototxt` -> `net.preprocess.json`, the file beside it that holds its settings."""
    prototxt = Path(prototxt)
    return prototxt.with_name(prototxt.stem + SIDECAR_SUFFIX)


def sidecar_text(settings: ModelSettings) -> str:
    """The sidecar's JSON: the format tag and the transformer's fields one a line, then the
    labels (maybe none) one a line, so the file reads and diffs like a labels.txt."""
    fields = {"format": SIDECAR_FORMAT, **settings.transformer.as_dict()}
    lines = [f" {json.dumps(key)}: {json.dumps(value)}," for key, value in fields.items()]
    names = ",\n".join(f"  {json.dumps(name, ensure_ascii=False)}" for name in settings.labels)
    labels = f' "labels": [\n{names}\n ]' if names else ' "labels": []'
    return "\n".join(["{", *lines, labels, "}"]) + "\n"


def write_net_with_settings(net: CaffeNet, prototxt_path: str | os.PathLike,
                            weights_path: str | os.PathLike, settings: ModelSettings,
                            inputs: tuple = ()) -> None:
    """The prototxt, caffemodel and sidecar of a net, all written or none: a new net beside
    an earlier sidecar would be fed with another net's mean and channel order."""
    text = sidecar_text(settings).encode("utf-8")
    write_together([*net_writers(net, prototxt_path, weights_path),
                    (sidecar_path(prototxt_path), lambda fh: fh.write(text))], inputs)


def read_sidecar(path: str | os.PathLike) -> ModelSettings:
    """Settings written by `surgery --out`; a damaged file is a PreprocessError naming it."""
    path = Path(path)
    try:
        data = json.loads(read_regular(path, MAX_PROTOTXT_BYTES, "sidecar").decode("utf-8"))
        if data.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {SIDECAR_FORMAT!r}")
        transformer = Transformer(int(data["channels"]), tuple(map(int, data["channel_swap"])),
                                  float(data["raw_scale"]), tuple(map(float, data["mean"])),
                                  float(data["input_scale"]))
        labels = data.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
            raise ValueError(f"labels is {type(labels).__name__} {shown(str(labels))[:40]}, "
                             "not a list of names")
        labels = tuple(labels)
    except PreprocessError as err:
        raise PreprocessError(f"{path}: {err}") from None
    except RecursionError:
        raise PreprocessError(f"{path} is nested too deeply to be a preprocessing sidecar; "
                              "delete it or write it again with `surgery --out`") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as err:
        raise PreprocessError(f"{path} is not a preprocessing sidecar this viewer reads "
                              f"({err}); delete it or write it again with `surgery --out`") \
            from None
    return ModelSettings(transformer, labels)


@dataclass(frozen=True)
class Overrides:
    """Settings given by the user (flags or the GUI's dialog); None keeps what the model has."""

    mean: tuple[float, ...] | None = None
    channel_swap: tuple[int, ...] | None = None
    raw_scale: float | None = None
    input_scale: float | None = None
    labels: Path | None = None
    train: TrainTransform | None = None

    def apply(self, base: Transformer) -> Transformer:
        """`base` with these settings: the train_val net's first, then explicit values."""
        changes: dict = {}
        if self.train is not None:
            changes.update(input_scale=self.train.input_scale)
            if self.train.mean:
                changes.update(mean=self.train.mean)
        for name in ("mean", "channel_swap", "raw_scale", "input_scale"):
            if getattr(self, name) is not None:
                changes[name] = getattr(self, name)
        if "mean" in changes and changes["mean"] and len(changes["mean"]) == 1 \
                and base.channels > 1:
            changes["mean"] = changes["mean"] * base.channels     # one value for every channel
        return replace(base, **changes)


def net_sizes(net: CaffeNet) -> tuple[int, int]:
    """(input channels, classes) of a classifier or a fully convolutional net."""
    shapes = netgraph.infer_shapes(net.param)
    channels = next(iter(netgraph.input_shapes(net.param).values()))[1]
    return channels, shapes[netgraph.score_blob(net.param)][1]


def settings_for(prototxt: str | os.PathLike | None, channels: int, classes: int,
                 overrides: Overrides = Overrides()) -> ModelSettings:
    """The settings a net is run with: Caffe's defaults, then the sidecar beside `prototxt`,
    then `overrides`; class names from --labels, the sidecar, or a labels file beside it."""
    base, names, notes = Transformer.default_for(channels), (), []
    if prototxt is not None and sidecar_path(prototxt).is_file():
        stored = read_sidecar(sidecar_path(prototxt))
        if stored.transformer.channels != channels:
            raise PreprocessError(f"{sidecar_path(prototxt)} is for a {stored.transformer.channels}"
                                  f"-channel net, but {Path(prototxt).name} has {channels}")
        base, names = stored.transformer, stored.labels
    transformer = overrides.apply(base)
    labels_file = overrides.labels or (None if names or prototxt is None else
                                       labels_mod.labels_file_beside(prototxt))
    if labels_file is not None:
        names = labels_mod.read_labels(labels_file)
    if names and len(names) != classes:
        notes.append(f"{labels_file or 'the stored labels'} has {len(names)} names but the net "
                     f"has {classes} classes; classes are numbered instead")
        names = ()
    return ModelSettings(transformer, tuple(names), tuple(notes))


def parse_overrides(mean: str | None = None, channel_swap: str | None = None,
                    raw_scale: str | None = None, input_scale: str | None = None,
                    labels: str | os.PathLike | None = None,
                    train_prototxt: str | os.PathLike | None = None) -> Overrides:
    """Overrides from the flags' text, each checked with a message naming its flag."""
    return Overrides(
        mean=parse_mean(mean) if mean is not None else None,
        channel_swap=parse_channel_swap(channel_swap) if channel_swap is not None else None,
        raw_scale=parse_number("--raw-scale", raw_scale) if raw_scale is not None else None,
        input_scale=parse_number("--input-scale", input_scale)
        if input_scale is not None else None,
        labels=Path(labels) if labels is not None else None,
        train=read_train_transform(train_prototxt) if train_prototxt is not None else None)


def power_scale_note(first_layers: Sequence, transformer: Transformer) -> str:
    """A warning when the net scales its own input (a Power layer right after the data, as the
    bundled LeNet does) and an input scale is given as well: the image would be scaled twice."""
    power = next((l for l in first_layers if l.type == "Power"), None)
    if power is None or transformer.input_scale == 1.0:
        return ""
    return (f"the net's Power layer '{power.name}' already scales its input by "
            f"{power.power_param.scale:g}; the input scale {transformer.input_scale:g} applies "
            "on top of it")
