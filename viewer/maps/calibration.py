"""A model's calibration sidecar: what makes its per-letter confidence honest.

The net's softmax is sure of its wrong letters too: a W read as H at 0.99. Two things tell a
wrong letter better than the softmax alone: the softmax itself, on a log-odds scale, and
whether the reader reads the same letter at the same place at the scales beside the chosen
one (`reading.Letter.agreement`; a wrong letter is often a scale's accident). `Calibration`
maps the two to a probability of being right by a logistic fit,
`sigmoid(slope * logit(prob) + weight * agreement + bias)`, fitted on letters read on
generated plates by `python -m bench.calibration --fit` (never on real plates), and kept beside
the model as `NAME.calibration.json`, for `NAME.prototxt` and its surgered
`NAME_fullconv.prototxt` alike (they compute the same scores). It changes no reading, only the
confidence shown. A model without one shows its softmax.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from viewer.files.safe_write import write_text_atomic

SUFFIX = ".calibration.json"
FULLCONV = "_fullconv"
EPSILON = 1e-6


@dataclass(frozen=True)
class Calibration:
    """The logistic map from (softmax probability, agreement) to a probability of being right."""

    slope: float
    weight: float
    bias: float

    def confidence(self, prob: float, agreement: float) -> float:
        p = min(max(prob, EPSILON), 1 - EPSILON)
        z = self.slope * math.log(p / (1 - p)) + self.weight * agreement + self.bias
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


def calibration_path(prototxt: str | os.PathLike) -> Path:
    """`net.prototxt` or `net_fullconv.prototxt` -> `net.calibration.json` beside it."""
    prototxt = Path(prototxt)
    stem = prototxt.stem[:-len(FULLCONV)] if prototxt.stem.endswith(FULLCONV) else prototxt.stem
    return prototxt.with_name(stem + SUFFIX)


def read_calibration(prototxt: str | os.PathLike) -> Calibration | None:
    """The model's calibration; None when it has no sidecar or an unusable one (the
    confidence shown is then the softmax, as before there was calibration)."""
    try:
        data = json.loads(calibration_path(prototxt).read_text())
        values = [float(data[k]) for k in ("slope", "weight", "bias")]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Calibration(*values) if all(math.isfinite(v) for v in values) else None


def write_calibration(path: str | os.PathLike, calibration: Calibration, fitted_on: str) -> None:
    """Write a calibration sidecar, atomically."""
    fields = {"slope": round(calibration.slope, 5), "weight": round(calibration.weight, 5),
              "bias": round(calibration.bias, 5), "fitted_on": fitted_on}
    write_text_atomic(path, json.dumps(fields, indent=1) + "\n")
