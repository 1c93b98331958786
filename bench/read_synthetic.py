"""Plate reading accuracy on generated plates: the tuning set that is not the evaluation set.

    python -m bench.read_synthetic [--count N] [--seed S] [--engine NAME] [--model NAME]

Random texts, styles and photo effects from viewer.dataset.plates, drawn with characters 14 to
80 pixels tall, read with `--scale auto`. Reading is tuned here, so the real dev plates stay an
honest measurement. Prints character accuracy, exact plates and the worst readings.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.read_plates import plate_dense
from viewer.files import paths
from viewer.dataset.plates import random_plate
from viewer.engines import DEFAULT_ENGINE
from viewer.plates.reading import auto_read
from viewer.plates.scoring import char_accuracy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read_synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    parser.add_argument("--model", choices=tuple(paths.PLATE_MODELS), default="lenet",
                        help="the bundled plate net (default lenet, the figures before BNNet)")
    args = parser.parse_args(argv)
    dense = plate_dense(args.model, args.engine)
    rng = np.random.default_rng(args.seed)
    results = []
    for _ in range(args.count):
        plate = random_plate(rng, char_height_px=float(np.exp(rng.uniform(np.log(14),
                                                                          np.log(80)))))
        truth = "".join(c for c in plate.text if c.isalnum())
        reading, _ = auto_read(dense, plate.image)
        results.append((char_accuracy(reading.text, truth), truth, reading.text,
                        plate.char_height_px, reading.scale))
    accuracy = np.mean([r[0] for r in results])
    exact = sum(r[1] == r[2] for r in results)
    for acc, truth, text, height, scale in sorted(results)[:10]:
        print(f"{acc:.2f} {truth:<10} {text:<12} char {height:5.1f} px, scale {scale:.2f}")
    print(f"character accuracy {accuracy:.3f}, exact {exact}/{len(results)} "
          f"({exact / len(results):.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
