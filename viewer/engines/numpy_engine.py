"""A plain numpy forward pass: slow but short enough to read, the reference the others match.

It runs each layer with `viewer.engines.ops`, needs nothing beyond numpy, so it runs
everywhere, and the tests use it as an independent check of OpenCV and of surgery.
"""
from __future__ import annotations

import numpy as np

from viewer import progress
from viewer.engines.base import Engine
from viewer.engines.ops import run_layer


class NumpyEngine(Engine):
    """Reference forward pass in numpy."""

    name = "numpy"

    def _forward(self, data: np.ndarray, blobs: list[str]) -> dict[str, np.ndarray]:
        values = {self.input_name: data}
        for k, layer in enumerate(self.deploy):
            if layer.type == "Input":
                continue
            bottoms = [values[b] for b in layer.bottom]
            out = run_layer(layer, bottoms, self.net.weights.get(layer.name, []))
            for top in layer.top:
                values[top] = out
            progress.report((k + 1) / len(self.deploy))     # layers done
        return {b: values[b] for b in blobs}
