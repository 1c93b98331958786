"""The bundled plate nets side by side: the cost of a dense pass and what they read.

    python -m bench.plate_models [--engine NAME] [--repeat N] [--image PNG]

Issue 25 asks that the stronger net's dense pass of the sample plate, at the automatic scale,
costs at most 4x LeNet's. Both nets map the same image at LeNet's automatic scale (the scale
`read` settles on), and at the tutorial's scale 0.9 (a larger map, where the convolutions
weigh more than the per-window layers), on the same engine, in rotated blocks (`measure.rotated_ms`) so a load
that comes and goes hits both alike; the figure is the ratio of the medians in this one run.
Also: each net's reading of the image and its multiply-adds per window.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from bench.measure import rotated_ms
from bench.read_plates import plate_dense
from viewer.engines import DEFAULT_ENGINE
from viewer.files import paths
from viewer.maps.images import load_image
from viewer.net import cost
from viewer.plates.reading import auto_read

TARGET_RATIO = 4.0
TUTORIAL_SCALE = 0.9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plate_models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--image", type=Path, default=paths.SAMPLE_PLATE)
    args = parser.parse_args(argv)
    image = load_image(args.image)
    models = [m for m in paths.PLATE_MODELS.values() if m.bundled()]
    dense = {m.name: plate_dense(m.name, args.engine) for m in models}
    readings = {name: auto_read(d, image)[0] for name, d in dense.items()}
    for m in models:
        r = readings[m.name]
        flops = cost.forward_flops(dense[m.name].net, (1, 1, 28, 28))  # = the classifier's
        print(f"{m.name:<6} {flops / 1e6:.2f} MFLOP per window; reads {r.text} at its "
              f"automatic scale {r.scale:.3f}")
    for scale in (readings["lenet"].scale, TUTORIAL_SCALE):
        times = rotated_ms({name: (lambda d=d: d.run(image, scale))
                            for name, d in dense.items()}, repeat=args.repeat)
        medians = {name: statistics.median(t) for name, t in times.items()}
        line = ", ".join(f"{name} {ms:.2f} ms" for name, ms in medians.items())
        print(f"scale {scale:.3f}, dense pass ({args.engine}): {line}")
        for name in medians:
            if name != "lenet":
                ratio = medians[name] / medians["lenet"]
                verdict = "met" if ratio <= TARGET_RATIO else "missed"
                print(f"  {name} / lenet: {ratio:.2f}x (target <= {TARGET_RATIO:g}x, {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
