"""Plates in faces and layouts the bundled models never saw: DINish faces, seven countries.

    python -m bench.read_unseen [--count N] [--seed S] [--engine NAME] [--model NAME ...]

LeNet is trained on 12 faces from Debian packages, BNNet on those and six of the nine bundled
DINish faces, both on Slovak, Czech and generic EU layouts (`viewer.dataset`). This set draws
its plates in the three DINish faces neither saw (`fonts.DINISH_HELD_OUT`: close to DIN 1451,
`resources/fonts/`) with the formats, separators and bands of Germany, the
Netherlands, Belgium, Austria, Switzerland, Denmark and Sweden, with the same photo effects as
training, characters 14 to 60 px tall, and reads them as `read --scale auto` does. It is a
generalisation check, not a tuning set: no reader setting is chosen on it.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np

from bench.read_plates import plate_dense
from viewer.dataset.plates import random_plate_text, random_style, synthesize_plate
from viewer.engines import DEFAULT_ENGINE
from viewer.files import paths
from viewer.maps.featuremap import DenseClassifier
from viewer.plates.reading import auto_read
from viewer.plates.scoring import reading_figures

# Country band code, layout, and plate formats (L letter, D digit; `*` the round stamps, `-`
# a hyphen, a space a gap), as those countries write them.
COUNTRIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "D": ("EU", ("LL*LL DDDD", "L*L DDD", "LLL*L DDDD")),
    "NL": ("EU", ("DD-LLL-D", "LL-DDD-L", "D-LLL-DD")),
    "B": ("EU", ("D-LLL-DDD",)),
    "A": ("EU", ("L DDDD L", "LL DDD LL")),
    "CH": ("plain", ("LL DDDDDD", "LL DDDDD")),
    "DK": ("EU", ("LL DD DDD",)),
    "S": ("EU", ("LLL DDD", "LLL DDL")),
}


def unseen_plate(rng: np.random.Generator, char_height_px: float):
    """One plate of a random country of `COUNTRIES`, in a DINish face, with photo effects."""
    country = list(COUNTRIES)[int(rng.integers(len(COUNTRIES)))]
    layout, formats = COUNTRIES[country]
    text = random_plate_text(rng, formats[int(rng.integers(len(formats)))])
    style = replace(random_style(rng, faces="dinish-held-out"), layout=layout, country=country)
    return synthesize_plate(text, rng, char_height_px=char_height_px, style=style, augment=True)


def evaluate(dense: DenseClassifier, count: int, seed: int) -> dict:
    """Read `count` unseen plates; the figures of `scoring.reading_figures` and the worst."""
    rng = np.random.default_rng(seed)
    readings = []
    for _ in range(count):
        plate = unseen_plate(rng, float(np.exp(rng.uniform(np.log(14), np.log(60)))))
        truth = "".join(c for c in plate.text if c.isalnum())
        reading, _ = auto_read(dense, plate.image)
        readings.append((reading.text, truth))
    return {**reading_figures(readings), "readings": readings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read_unseen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=70)
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    parser.add_argument("--model", action="append", choices=tuple(paths.PLATE_MODELS),
                        help="a bundled plate net to read with (default: every bundled one)")
    args = parser.parse_args(argv)
    names = args.model or [m.name for m in paths.PLATE_MODELS.values() if m.bundled()]
    for name in names:
        result = evaluate(plate_dense(name, args.engine), args.count, args.seed)
        for read, truth in result["readings"]:
            if read != truth:
                print(f"{name}: {truth:<10} {read}")
        errors = ", ".join(f"{k} {v}" for k, v in list(result["errors"].items())[:12])
        print(f"{name}: errors: {errors or 'none'}")
        print(f"{name}: character accuracy {result['char_accuracy']:.3f}, exact "
              f"{result['exact']}/{result['count']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
