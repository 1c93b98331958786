"""`python -m bench.read_fine [DEV_FOLDER]`: does reading from a fine (stride-1) map read better?

For each plate, the scale comes from the reader's own coarse sweep (`reading.auto_read`); the
plate is then read once more from the stride-1 map at that scale, whose peaks have one-pixel
resolution. Both readings are scored against the truth in the same run: on the dev crops
(manifest.csv, as `bench.read_plates`) when a folder is given, and on generated plates (as
`bench.read_synthetic`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench.read_plates import manifest_rows
from viewer.files import paths
from viewer.dataset.plates import random_plate
from viewer.engines import DEFAULT_ENGINE
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import load_image
from viewer.net.weights import load_net
from viewer.plates.reading import auto_read, read_plate
from viewer.plates.scoring import char_accuracy


def both_readings(dense: DenseClassifier, fine: DenseClassifier, image: np.ndarray,
                  truth: str) -> dict:
    """The coarse reading and the fine re-reading at its scale, each scored."""
    coarse, fm = auto_read(dense, image)
    again = read_plate(fine.run(image, fm.scale))
    return {"truth": truth, "scale": fm.scale,
            **{f"{name}_read": r.text for name, r in (("coarse", coarse), ("fine", again))},
            **{f"{name}_accuracy": char_accuracy(r.text, truth)
               for name, r in (("coarse", coarse), ("fine", again))}}


def summary(rows: list[dict]) -> dict:
    count = max(1, len(rows))
    return {"count": len(rows), **{
        f"{name}_{what}": value for name in ("coarse", "fine") for what, value in (
            ("char_accuracy", sum(r[f"{name}_accuracy"] for r in rows) / count),
            ("exact", sum(r[f"{name}_read"] == r["truth"] for r in rows)))}}


def dev_rows(folder: Path, dense: DenseClassifier, fine: DenseClassifier) -> list[dict]:
    manifest = manifest_rows(folder)
    return [both_readings(dense, fine, load_image(folder / row["plate_crop_file"]),
                          row["plate_text"].strip().upper()) for row in manifest]


def generated_rows(count: int, seed: int, dense: DenseClassifier,
                   fine: DenseClassifier) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        plate = random_plate(rng, char_height_px=float(np.exp(rng.uniform(np.log(14),
                                                                          np.log(80)))))
        truth = "".join(c for c in plate.text if c.isalnum())
        rows.append(both_readings(dense, fine, plate.image, truth))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read_fine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, nargs="?", help="dev crops with manifest.csv")
    parser.add_argument("--count", type=int, default=60, help="generated plates")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    parser.add_argument("--json", type=Path, help="write every plate's readings here")
    args = parser.parse_args(argv)
    dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), args.engine)
    fine = dense.at_stride(1)
    report = {}
    if args.folder:
        report["dev"] = dev_rows(args.folder, dense, fine)
    report["generated"] = generated_rows(args.count, args.seed, dense, fine)
    for name, rows in report.items():
        s = summary(rows)
        print(f"{name} ({s['count']} plates): characters coarse {s['coarse_char_accuracy']:.3f}"
              f" fine {s['fine_char_accuracy']:.3f}; exact coarse {s['coarse_exact']} fine "
              f"{s['fine_exact']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
