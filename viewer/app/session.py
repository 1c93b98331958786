"""The loaded model and image the window shows, built by the same core calls the CLI makes.

Loading happens completely before anything is swapped in, so a file that fails to load leaves
the window's previous model or image in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewer.files import paths
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import load_image
from viewer.caffe.model_io import CaffeNet
from viewer.net.weights import load_net
from viewer.maps.preprocess import ModelSettings, net_sizes, settings_for
from viewer.surgery.convolutional import Conversion, is_fully_convolutional, make_fully_convolutional

MODEL_SUFFIXES = (".prototxt",)
WEIGHT_SUFFIXES = (".caffemodel",)


@dataclass
class LoadedModel:
    """A dense classifier plus, when known, the classifier it was made from."""

    net: CaffeNet               # as loaded: a classifier or a fully convolutional net
    dense: DenseClassifier
    prototxt: Path
    weights: Path | None
    classifier: CaffeNet | None = None
    conversions: list[Conversion] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.prototxt.name


@dataclass
class LoadedImage:
    """Pixels and where they came from (None for an image made in memory)."""

    pixels: np.ndarray
    path: Path | None

    @property
    def label(self) -> str:
        return self.path.name if self.path else "image"


def read_image(path: str | Path) -> LoadedImage:
    return LoadedImage(load_image(path), Path(path))


def read_net(prototxt: str | Path, weights: str | Path | None) -> CaffeNet:
    return load_net(prototxt, weights)


def needs_surgery(net: CaffeNet) -> bool:
    return not is_fully_convolutional(net.param)


def weights_beside(prototxt: Path) -> Path | None:
    """The .caffemodel with the prototxt's stem, the pairing `surgery` writes."""
    candidate = prototxt.with_suffix(".caffemodel")
    return candidate if candidate.exists() else None


def prototxt_beside(weights: Path) -> Path | None:
    candidate = weights.with_suffix(".prototxt")
    return candidate if candidate.exists() else None


def _bundled_classifier(prototxt: Path) -> CaffeNet | None:
    """Our surgered model's original classifier, so the Surgery panel has a 'before'."""
    if prototxt.resolve() == paths.FCN_PROTOTXT.resolve() and paths.CLASSIFIER_WEIGHTS.exists():
        return load_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
    return None


def build_model(net: CaffeNet, prototxt: Path, weights: Path | None,
                engine: str | None, settings: ModelSettings | None = None) -> LoadedModel:
    """A ready-to-map model; a classifier is made fully convolutional in memory.

    Without `settings` (the command line's flags), the net gets what is stored beside it:
    its preprocessing sidecar and a labels file, else Caffe's defaults.
    """
    settings = settings or settings_for(prototxt, *net_sizes(net))
    dense = DenseClassifier(net, engine, settings=settings)
    classifier = dense.classifier or _bundled_classifier(prototxt)
    conversions = make_fully_convolutional(classifier).conversions if classifier else []
    return LoadedModel(net, dense, Path(prototxt), Path(weights) if weights else None, classifier,
                       conversions)


@dataclass
class Opening:
    """What the viewer opens on, resolved before any window exists (`main.py view`'s flags):
    the model and image, and the channel, scale and stride asked for. Without a `scale` the
    first map is at the automatic one; `fine` follows each map with the stride-1 one."""

    model: LoadedModel
    image: LoadedImage
    channel: str | None = None
    scale: float | None = None
    fine: bool = False
    why: int | None = None      # the letter (from 1) whose "Why <class> here" opens shown
