"""The check that a transform kept a net's numbers: both nets on the same windows, scores compared.

Surgery is exact up to float32 rounding, so the fully convolutional net must give the
classifier's scores on classifier-sized inputs. The inputs are random noise and dark glyphs on
light ground (`probe_windows`), preprocessed as the user's maps will be, so the check runs where
the net's real inputs lie.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from viewer.caffe.model_io import CaffeNet
from viewer.engines import DEFAULT_ENGINE, create_engine
from viewer.errors import SurgeryError
from viewer.net import cost, netgraph


class Preprocessing(Protocol):
    """What the check needs of a preprocessing (`viewer.maps.preprocess.Transformer` is one):
    an H x W (x C) image of 0-255 pixels in, the net's 1 x C x H x W input out."""

    def transform(self, image: np.ndarray) -> np.ndarray: ...



@dataclass(frozen=True)
class Verification:
    """How far the fully convolutional net strays from the classifier on the same windows.

    `largest` is the largest |score| the classifier gave: float32 rounding grows with it, so
    the check allows TOLERANCE per unit of score once scores exceed 1 (a net fed raw 0-255
    pixels can score in the hundreds, where 1e-4 absolute is below float32 precision).
    """

    max_abs_diff: float
    inputs: int
    engine: str
    largest: float = 0.0

    @property
    def tolerance(self) -> float:
        return TOLERANCE * max(1.0, self.largest)

    @property
    def passed(self) -> bool:
        """Within tolerance; a NaN or infinite difference fails (NaN compares false)."""
        return math.isfinite(self.max_abs_diff) and self.max_abs_diff < self.tolerance


TOLERANCE = 1e-4


def probe_windows(shape: tuple[int, ...], count: int, seed: int = 0) -> np.ndarray:
    """`count` random-noise inputs and `count` dark glyphs on light ground, pixel values 0-255.

    The glyphs make the check meaningful for a trained net, whose activations on noise can be
    mostly zero; the noise covers what glyphs leave out.
    """
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    noise = rng.uniform(0, 255, (count, c, h, w)).astype(np.float32)
    glyphs = np.empty_like(noise)
    for k in range(count):
        canvas = np.full((h, w), rng.uniform(170, 250), np.float32)
        char = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[rng.integers(36)]
        size = min(h, w) / 28.0 * rng.uniform(0.7, 0.9)
        cv2.putText(canvas, char, (int(w * 0.2), int(h * 0.85)), cv2.FONT_HERSHEY_SIMPLEX, size,
                    float(rng.uniform(0, 80)), max(1, round(2 * size)), cv2.LINE_AA)
        glyphs[k] = canvas[None]
    return np.concatenate([noise, glyphs])


def _check_affordable(classifier: CaffeNet, shape: tuple[int, ...], count: int) -> None:
    """Refuse, before allocating, a check whose windows and forward pass exceed the memory
    limit: a prototxt may declare an absurd input that global pooling makes cheap to store."""
    need = 2 * count * 4 * int(np.prod(shape, dtype=np.float64)) + \
        cost.generic_peak_bytes(classifier, tuple(shape))
    if need > cost.MEMORY_LIMIT:
        raise SurgeryError(
            f"{classifier.source} declares an input of {shape}; checking the surgery on "
            f"{2 * count} such windows would need {need / 2**30:.1f} GB, more than the "
            f"{cost.MEMORY_LIMIT / 2**30:g} GB limit: declare the classifier's real window size")


def prepared_windows(windows: np.ndarray, transformer: Preprocessing) -> np.ndarray:
    """`probe_windows` (pixels 0-255) as the net sees them after `transformer`'s steps, so
    the check runs where the user's preprocessing puts the net's inputs."""
    channels = windows.shape[1]
    return np.concatenate([transformer.transform(w.transpose(1, 2, 0) if channels == 3 else w[0])
                           for w in windows])


def verify_equivalence(classifier: CaffeNet, fcn: CaffeNet, count: int = 8,
                       engine: str | None = None, seed: int = 0,
                       transformer: Preprocessing | None = None) -> Verification:
    """Run both nets on the same classifier-sized inputs and compare their class scores.

    With a `transformer`, the windows are preprocessed as the maps will be (mean, scales).
    """
    if count < 1:
        raise SurgeryError(f"the equivalence check needs at least 1 window of each kind, got "
                           f"{count}")
    name = engine or DEFAULT_ENGINE
    shape = next(iter(netgraph.input_shapes(classifier.param).values()))
    _check_affordable(classifier, shape, count)
    inputs = probe_windows(shape, count, seed)
    if transformer is not None:
        inputs = prepared_windows(inputs, transformer)
    cls_engine = create_engine(name, classifier)
    fcn_engine = create_engine(name, fcn)
    cls_blob = netgraph.score_blob(classifier.param)
    fcn_blob = netgraph.score_blob(fcn.param)
    worst = largest = 0.0
    for k in range(len(inputs)):
        window = inputs[k:k + 1]
        expected = cls_engine.forward(window, [cls_blob])[cls_blob].reshape(-1)
        if not np.isfinite(expected).all():
            raise SurgeryError(_not_finite(classifier, expected, k, len(inputs)))
        dense = fcn_engine.forward(window, [fcn_blob])[fcn_blob]
        # NaN-aware: max(worst, nan) would keep `worst`, and a net scoring NaN would pass
        diff = float(np.abs(dense[0, :, 0, 0] - expected).max())
        worst = diff if not diff <= worst else worst
        largest = max(largest, float(np.abs(expected).max()))
    return Verification(worst, len(inputs), name, largest)


def _not_finite(classifier: CaffeNet, scores: np.ndarray, k: int, count: int) -> str:
    """Why no check can pass: the classifier itself scores NaN or infinity on a probe window
    (a BatchNorm of zero variance, a Power rooting a negative number, an overflow)."""
    what = "NaN" if np.isnan(scores).any() else "infinite"
    return (f"{classifier.source} gives {what} scores on check window {k + 1} of {count}: a "
            "layer divides by zero, takes the root of a negative number or overflows (look at "
            "BatchNorm variances and eps, Power, Scale factors), so no surgery of it can be "
            "checked")
