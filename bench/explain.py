"""What one cell's explanation costs, as ratios measured in one run (`python -m bench.explain`).

The issue's targets: on the plate LeNet one cell's `gradient` (and `gradcam`) at most 2x one
classifier pass on the cell's 28x28 window, `occlusion` (6x6 grey patch at stride 2, 144
patches) one batched pass; on CaffeNet (tests/nets/caffenet_style.prototxt, random weights)
at 451x451 one cell's gradient at most the full dense pass. Wall medians, taken in turns
(`measure.rotated_ms`), beside CPU medians (`measure.cpu_ms`), which a loaded machine
disturbs less. The pass on the window is given on the numpy engine (the library the backward
is written in) and on the default engine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

from bench.measure import cpu_ms, rotated_ms
from viewer.caffe import model_io
from viewer.engines import DEFAULT_ENGINE, create_engine
from viewer.files import paths
from viewer.maps.attribution import Explainer, cell_crop
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import load_image
from viewer.net.weights import init_weights, load_net

ROOT = Path(__file__).resolve().parent.parent
CAFFENET = ROOT / "tests" / "nets" / "caffenet_style.prototxt"
CAFFENET_SIZE = 451


def _timed(calls: dict, repeat: int) -> dict:
    wall = rotated_ms(calls, repeat=repeat)
    return {name: {"wall_ms": round(statistics.median(t), 3),
                   "cpu_ms": round(cpu_ms(calls[name], repeat=repeat), 3)}
            for name, t in wall.items()}


def _ratio(times: dict, top: str, bottom: str) -> dict:
    return {kind: round(times[top][kind] / times[bottom][kind], 2)
            for kind in ("wall_ms", "cpu_ms")}


def lenet_section(repeat: int = 20) -> dict:
    """One cell of the sample plate's map (the R): explanation against passes on its window."""
    dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), "numpy")
    data = dense.prepare(load_image(paths.SAMPLE_PLATE), 0.255)
    cell, channel = (7, 12), dense.labels.index("R")
    explainer = Explainer(dense)
    crop = cell_crop(explainer.field, cell, data.shape[2:])
    window = crop.take(data).copy()
    batch, places = explainer.occlusion_batch(window, crop)
    fast = create_engine(DEFAULT_ENGINE, dense.net)
    blob = [dense.score_blob]
    calls = {
        "window_numpy": lambda: dense.engine.forward(window, blob),
        f"window_{DEFAULT_ENGINE}": lambda: fast.forward(window, blob),
        "gradient": lambda: explainer.explain(data, cell, channel, ["gradient"]),
        "gradcam": lambda: explainer.explain(data, cell, channel, ["gradcam"]),
        "occlusion_batch_numpy": lambda: dense.engine.forward(batch, blob),
        f"occlusion_batch_{DEFAULT_ENGINE}": lambda: fast.forward(batch, blob),
    }
    times = _timed(calls, repeat)
    return {"window": list(window.shape), "occlusion_patches": len(places), "times": times,
            "gradient_vs_window_numpy": _ratio(times, "gradient", "window_numpy"),
            "gradcam_vs_window_numpy": _ratio(times, "gradcam", "window_numpy"),
            f"gradient_vs_window_{DEFAULT_ENGINE}": _ratio(times, "gradient",
                                                           f"window_{DEFAULT_ENGINE}"),
            f"occlusion_vs_window_{DEFAULT_ENGINE}": _ratio(
                times, f"occlusion_batch_{DEFAULT_ENGINE}", f"window_{DEFAULT_ENGINE}")}


def caffenet_section(repeat: int = 5) -> dict:
    """One cell's gradient on CaffeNet at 451x451 against the full dense pass."""
    param, _ = model_io.read_prototxt(CAFFENET)
    dense = DenseClassifier(init_weights(param, 0), "numpy")
    image = np.random.default_rng(0).integers(0, 256, (CAFFENET_SIZE, CAFFENET_SIZE, 3),
                                              dtype=np.uint8)
    data = dense.prepare(image, 1.0)
    explainer = Explainer(dense)
    fast = create_engine(DEFAULT_ENGINE, dense.net)
    blob = [dense.score_blob]
    calls = {f"dense_{DEFAULT_ENGINE}": lambda: fast.forward(data, blob),
             "dense_numpy": lambda: dense.engine.forward(data, blob),
             "gradient_corner": lambda: explainer.explain(data, (0, 0), 1, ["gradient"]),
             "gradient_middle": lambda: explainer.explain(data, (4, 4), 1, ["gradient"])}
    times = _timed(calls, repeat)
    crop = cell_crop(explainer.field, (4, 4), data.shape[2:])
    return {"input": list(data.shape), "middle_crop": [crop.y1 - crop.y0, crop.x1 - crop.x0],
            "times": times,
            f"gradient_middle_vs_dense_{DEFAULT_ENGINE}": _ratio(times, "gradient_middle",
                                                                 f"dense_{DEFAULT_ENGINE}"),
            "gradient_middle_vs_dense_numpy": _ratio(times, "gradient_middle", "dense_numpy")}


def explain_section(repeat: int = 5) -> dict:
    return {"engine": DEFAULT_ENGINE, "lenet": lenet_section(max(repeat, 10)),
            "caffenet": caffenet_section(repeat), "load_average": list(os.getloadavg())}


def report_lines(section: dict) -> list[str]:
    lenet, caffenet, engine = section["lenet"], section["caffenet"], section["engine"]
    return [
        f"explain, plate LeNet, one cell (window {lenet['window'][2]}x{lenet['window'][3]}), "
        f"ratios wall (cpu):",
        *(f"  {name}: {r['wall_ms']} ({r['cpu_ms']})" for name, r in lenet.items()
          if name.endswith(tuple(["numpy", engine])) and isinstance(r, dict)
          and "wall_ms" in r),
        f"explain, CaffeNet {caffenet['input'][2]}x{caffenet['input'][3]}, crop "
        f"{caffenet['middle_crop']}:",
        *(f"  {name}: {r['wall_ms']} ({r['cpu_ms']})" for name, r in caffenet.items()
          if name.startswith("gradient_middle_vs")),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per candidate")
    args = parser.parse_args(argv)
    section = explain_section(args.repeat)
    print("\n".join(report_lines(section)))
    print(json.dumps(section, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
