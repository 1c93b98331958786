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
from viewer.net import cost, netgraph
from viewer.surgery.convolutional import (Conversion, global_poolings, inner_products,
                                          is_fully_convolutional, make_fully_convolutional)
from viewer.surgery.verify import Verification, verify_equivalence

MODEL_SUFFIXES = (".prototxt",)
WEIGHT_SUFFIXES = (".caffemodel",)
# The equivalence check's budget in multiply-adds (some 0.5 s on one core): LeNet gets the
# check's 8 windows of each kind, a zoo net at 224x224 one or two, so the map follows the
# check within seconds.
CHECK_BUDGET = 2e9


@dataclass
class LoadedModel:
    """A dense classifier plus, when known, the classifier it was made from."""

    net: CaffeNet               # as loaded: a classifier or a fully convolutional net
    dense: DenseClassifier
    prototxt: Path
    weights: Path | None
    classifier: CaffeNet | None = None
    conversions: list[Conversion] = field(default_factory=list)
    verification: Verification | None = None    # the surgery checked when the model loaded

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


def surgery_changes(net: CaffeNet) -> str:
    """What the surgery will change in a classifier, in words for the question before it."""
    ips = [l.name for l in inner_products(net.param)]
    pools = [l.name for l in global_poolings(net.param)]
    changes = []
    if ips:
        changes.append(f"cast its InnerProduct layer{'s' if len(ips) > 1 else ''} "
                       f"{', '.join(ips)} into convolutions with the same weights")
    if pools:
        changes.append(f"give its global pooling {', '.join(pools)} the kernel of its input, "
                       "stride 1")
    return " and ".join(changes)


def check_count(classifier: CaffeNet) -> int:
    """Windows of each kind for the equivalence check: 8 for a small net, fewer for a zoo net
    (a SqueezeNet at 224x224 costs 0.35 G multiply-adds a window, and each runs twice)."""
    shape = next(iter(netgraph.input_shapes(classifier.param).values()))
    per_window = 4 * max(1, cost.forward_flops(classifier, tuple(shape)))
    return int(min(8, max(1, CHECK_BUDGET // per_window)))


def verify_model(classifier: CaffeNet, dense: DenseClassifier) -> Verification:
    """The surgery's equivalence check, as the maps will see the windows (preprocessing)."""
    return verify_equivalence(classifier, dense.net, count=check_count(classifier),
                              engine=dense.engine_name, transformer=dense.transformer)


def weights_beside(prototxt: Path) -> Path | None:
    """The .caffemodel with the prototxt's stem, the pairing `surgery` writes."""
    candidate = prototxt.with_suffix(".caffemodel")
    return candidate if candidate.exists() else None


def prototxt_beside(weights: Path) -> Path | None:
    candidate = weights.with_suffix(".prototxt")
    return candidate if candidate.exists() else None


def _bundled_classifier(prototxt: Path) -> CaffeNet | None:
    """Our surgered model's original classifier, so the Surgery panel has a 'before'."""
    model = paths.plate_model_of(prototxt)
    if model is not None and prototxt.resolve() == model.fcn_prototxt.resolve() \
            and model.weights.exists():
        return load_net(model.prototxt, model.weights)
    return None


def build_model(net: CaffeNet, prototxt: Path, weights: Path | None,
                engine: str | None, settings: ModelSettings | None = None) -> LoadedModel:
    """A ready-to-map model; a classifier is made fully convolutional in memory and checked
    (`verify_model`, seconds at most), so its first map follows a passed check.

    Without `settings` (the command line's flags), the net gets what is stored beside it:
    its preprocessing sidecar and a labels file, else Caffe's defaults.
    """
    settings = settings or settings_for(prototxt, *net_sizes(net))
    dense = DenseClassifier(net, engine, settings=settings)
    classifier = dense.classifier or _bundled_classifier(prototxt)
    conversions = make_fully_convolutional(classifier).conversions if classifier else []
    verification = verify_model(classifier, dense) if dense.classifier is not None else None
    return LoadedModel(net, dense, Path(prototxt), Path(weights) if weights else None, classifier,
                       conversions, verification)


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
