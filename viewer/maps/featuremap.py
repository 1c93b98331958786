"""Dense class maps: the fully convolutional pass over a preprocessed image, and softmax.

Each map carries its `viewer.net.geometry.Geometry`: where its cells look in the image.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from viewer.net import netgraph
from viewer.net.geometry import Geometry, classifier_window
from viewer.engines import DEFAULT_ENGINE, Engine, create_engine
from viewer.engines.ops import softmax
from viewer.errors import ModelError, PreprocessError
from viewer.maps.calibration import Calibration, read_calibration
from viewer.maps.finemap import NATIVE, FineMethod, create_fine_engine
from viewer.maps.labels import labels_for
from viewer.maps.planning import LEAN_ENGINE, PassPlanner
from viewer.caffe.model_io import CaffeNet, shape_text
from viewer.maps.preprocess import ModelSettings, Transformer
from viewer.surgery.convolutional import is_fully_convolutional, make_fully_convolutional



@dataclass
class FeatureMap:
    """A dense pass over one image at one scale: everything the viewer and the CLI show."""

    scores: np.ndarray          # C x h x w raw class scores
    probs: np.ndarray           # C x h x w softmax over classes at each cell
    conv1: np.ndarray | None    # K x h1 x w1 outputs of the first convolution
    labels: list[str]
    geometry: Geometry
    image_shape: tuple[int, int]
    scale: float
    forward_ms: float
    blobs: dict[str, np.ndarray] = field(default_factory=dict)
    engine: str = ""            # the engine that computed it: the chosen one, or LEAN_ENGINE
    engine_note: str = ""       # why it is not the chosen engine, "" when it is
    # (x, y, w, h) of the image this map covers when it is a crop's, placed in the image
    # (`geometry` and `image_shape` are the image's); None: the whole image
    region: tuple[int, int, int, int] | None = None
    calibration: Calibration | None = None   # how its letters' confidence is shown

    def best(self) -> tuple[np.ndarray, np.ndarray]:
        """Per cell: the most probable class and its probability."""
        return self.probs.argmax(axis=0), self.probs.max(axis=0)


def _check_score_map(blob: str, shape: tuple[int, ...]) -> None:
    """A dense map needs scores laid out N x classes x H x W (a Flatten after the last
    convolution of a fully convolutional net would leave one long vector)."""
    if len(shape) != 4:
        raise ModelError(f"the net's scores '{blob}' are {shape_text(shape)}, not a "
                         "map of classes x height x width: remove the Flatten (or other "
                         "reshaping layer) after the last convolution")


class DenseClassifier:
    """A fully convolutional net on an engine, ready to map images at any scale.

    Given a classifier, it performs the surgery in memory first, so any Caffe classifier can
    be pointed at a whole image. `settings` hold its preprocessing and class names (default:
    Caffe's classify.py preprocessing and numbered classes, or the plate characters).
    """

    def __init__(self, net: CaffeNet, engine: str | None = None,
                 stride: int | None = None, settings: ModelSettings | None = None) -> None:
        self.classifier = None if is_fully_convolutional(net.param) else net
        self.net = net if self.classifier is None else make_fully_convolutional(net).net
        self.score_blob = netgraph.score_blob(self.net.param)
        self.calibration = read_calibration(net.source)
        shapes = netgraph.infer_shapes(self.net.param)
        _check_score_map(self.score_blob, shapes[self.score_blob])
        native = classifier_window(self.net, self.score_blob, shapes)
        # A map every `stride` pixels (default: the net's own stride), see viewer.maps.finemap.
        self.native_stride = native.stride
        self.stride = stride or native.stride[0]
        self.unit = replace(native, stride=(self.stride, self.stride)) if stride else native
        chosen, self.method = self._engine(engine or DEFAULT_ENGINE)
        self.first_conv = next((l.top[0] for l in netgraph.deploy_layers(self.net.param)
                                if l.type == "Convolution"), None)
        self.channels = shapes[chosen.input_name][1]
        self.settings = settings or ModelSettings(Transformer.default_for(self.channels))
        if self.settings.transformer.channels != self.channels:
            raise PreprocessError(f"the preprocessing is for {self.settings.transformer.channels}"
                                  f"-channel input; {net.source} has {self.channels} channels")
        classes = shapes[self.score_blob][1]
        self.labels = list(self.settings.labels) if len(self.settings.labels) == classes \
            else labels_for(classes)
        conv1_channels = shapes[self.first_conv][1] if self.first_conv else 0
        self.planner = PassPlanner(chosen, lambda: self._engine(LEAN_ENGINE)[0],
                                   self.unit.receptive_field, self.channels, conv1_channels,
                                   self.wanted_blobs)

    def _engine(self, name: str) -> tuple[Engine, FineMethod]:
        """The named engine on this net, computing the map at `self.stride`."""
        if self.unit.stride == self.native_stride:
            return create_engine(name, self.net), FineMethod(self.stride, NATIVE)
        return create_fine_engine(name, self.net, self.stride)

    def at_stride(self, stride: int | None) -> "DenseClassifier":
        """The same net, engine and preprocessing mapping every `stride` pixels (None: the
        native stride)."""
        return DenseClassifier(self.classifier or self.net, self.engine_name, stride,
                               self.settings)

    @property
    def engine(self) -> Engine:
        """The chosen engine: the planner's, which may send a pass too large for it to the
        lean engine instead."""
        return self.planner.engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        self.planner.engine = engine

    @property
    def engine_name(self) -> str:
        """The chosen engine; a pass too large for it may run on the planner's `lean_engine` instead."""
        return self.engine.name

    def wanted_blobs(self, extra_blobs: tuple[str, ...] = ()) -> list[str]:
        """The blobs a pass returns: the scores, the first convolution, and `extra_blobs`."""
        return list(dict.fromkeys([self.score_blob, *([self.first_conv] if self.first_conv
                                                      else []), *extra_blobs]))

    def prepare(self, image: np.ndarray, scale: float,
                extra_blobs: tuple[str, ...] = ()) -> np.ndarray:
        """The net's N x C x H x W float32 input: `image` rescaled, then `transformer`'s steps.

        Checked first by the planner's `check_scale`, so a request that cannot work allocates nothing.
        """
        self.planner.check_scale(image.shape, scale, extra_blobs)
        return self._input(image, scale)

    @property
    def transformer(self) -> Transformer:
        """How pixels become this net's input (`settings.transformer`)."""
        return self.settings.transformer

    def _input(self, image: np.ndarray, scale: float) -> np.ndarray:
        return self.settings.transformer.prepare(image, scale)

    def run(self, image: np.ndarray, scale: float = 1.0, extra_blobs: tuple[str, ...] = (),
            warm: bool = False, pictures: bool = False) -> FeatureMap:
        """Map `image` (RGB or gray uint8) at `scale`; `warm` runs once untimed first.

        The pass runs on the engine the planner's `check_scale` picks (given `pictures`); the map names it.
        """
        plan = self.planner.check_scale(image.shape, scale, extra_blobs, pictures)
        data = self._input(image, scale)
        wanted = self.wanted_blobs(extra_blobs)
        with np.errstate(all="ignore"):  # an overflow shows in the scores, refused below
            if warm:
                plan.engine.forward(data, wanted)
            start = time.perf_counter()
            out = plan.engine.forward(data, wanted)
            elapsed = (time.perf_counter() - start) * 1000.0
        scores = out[self.score_blob][0]
        if not np.isfinite(scores).all():
            raise ModelError(f"{self.net.source}: the scores overflow to infinity or NaN at "
                             f"scale {scale:g}; the weights or Power/Scale parameters are too "
                             "large for float32")
        actual = (data.shape[2] / image.shape[0], data.shape[3] / image.shape[1])
        geometry = replace(self.unit, scale=actual)
        return FeatureMap(
            scores=scores, probs=softmax(scores, axis=0), labels=self.labels,
            conv1=out[self.first_conv][0] if self.first_conv else None, geometry=geometry,
            image_shape=tuple(image.shape[:2]), scale=scale, forward_ms=elapsed,
            blobs={b: out[b][0] for b in extra_blobs}, engine=plan.engine.name,
            engine_note=plan.note, calibration=self.calibration)
