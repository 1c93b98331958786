"""A model's calibration sidecar: the temperature that makes its per-letter confidence honest.

The net's softmax is sure of its wrong letters too. Dividing its scores by a temperature T
before the softmax keeps every ranking (so every reading) and spreads the probabilities; T is
fitted on generated plates by `python -m bench.calibration --fit` and kept beside the model as
`NAME.calibration.json` (for `NAME.prototxt` and its surgered `NAME_fullconv.prototxt` alike:
they compute the same scores). A model without one has T = 1, its softmax as it is.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from viewer.files.safe_write import write_text_atomic

SUFFIX = ".calibration.json"
FULLCONV = "_fullconv"


def calibration_path(prototxt: str | os.PathLike) -> Path:
    """`net.prototxt` or `net_fullconv.prototxt` -> `net.calibration.json` beside it."""
    prototxt = Path(prototxt)
    stem = prototxt.stem[:-len(FULLCONV)] if prototxt.stem.endswith(FULLCONV) else prototxt.stem
    return prototxt.with_name(stem + SUFFIX)


def read_temperature(prototxt: str | os.PathLike) -> float:
    """The model's fitted temperature; 1 when it has no sidecar or the sidecar is unusable
    (a confidence is then the plain softmax, as before there was calibration)."""
    try:
        value = float(json.loads(calibration_path(prototxt).read_text())["temperature"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1.0
    return value if 0.0 < value < float("inf") else 1.0


def write_temperature(path: str | os.PathLike, temperature: float, fitted_on: str) -> None:
    """Write a calibration sidecar, atomically."""
    text = json.dumps({"temperature": round(float(temperature), 4), "fitted_on": fitted_on},
                      indent=1)
    write_text_atomic(path, text + "\n")
