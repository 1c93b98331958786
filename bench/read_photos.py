"""Plates found and read in whole photos, against the plate boxes of a manifest.

    python -m bench.read_photos DIR [--engine NAME] [--json]

DIR holds a `manifest.csv` with the columns `file`, `plate_text` and the plate box `x`, `y`,
`w`, `h` (the format of shared/plates-dev). Each photo is read as `read PHOTO` does; the best
plate counts as *found* when the box of its read letters overlaps the true plate box with an
IoU of at least 0.3 and its centre lies inside it, and as *exact* when its text is the plate's.
Time per photo is wall time of the whole search, on whatever else the machine is running.
The data is evaluation material only: nothing here is tuned to particular images.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.read_plates import manifest_arguments, manifest_rows, verdict
from viewer.files import paths
from viewer.errors import ViewerError
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import load_image
from viewer.net.weights import load_net
from viewer.plates.locate import find_plates
from viewer.plates.scoring import char_accuracy, is_found

# Issue 16's targets on the 30 dev photos.
TARGET_FOUND = 27 / 30
TARGET_EXACT = 18 / 30


def read_photo(dense: DenseClassifier, folder: Path, row: dict) -> dict:
    """One photo of the manifest: what was read, where, and how long it took."""
    truth = row["plate_text"].strip().upper()
    true_box = tuple(float(row[k]) for k in ("x", "y", "w", "h"))
    start = time.perf_counter()
    try:
        best = find_plates(dense, load_image(folder / row["file"])).best
    except ViewerError as err:
        best = None
        print(f"warning: {row['file']}: {err}", file=sys.stderr)
    seconds = time.perf_counter() - start
    text = best.text if best else ""
    box = best.box if best else None
    return {"file": row["file"], "truth": truth, "read": text,
            "box": [round(v, 1) for v in box] if box else None,
            "scale": best.scale if best else None, "found": is_found(box, true_box),
            "exact": text == truth, "char_accuracy": char_accuracy(text, truth),
            "seconds": round(seconds, 2)}


def evaluate(folder: Path, engine: str) -> dict:
    """Search every photo of the manifest and collect per-photo results and the figures."""
    dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), engine)
    rows = manifest_rows(folder)
    photos = [read_photo(dense, folder, row) for row in rows]
    seconds = [p["seconds"] for p in photos] or [0.0]
    return {"photos": photos, "count": len(photos), "engine": engine,
            "found": sum(p["found"] for p in photos), "exact": sum(p["exact"] for p in photos),
            "char_accuracy": float(np.mean([p["char_accuracy"] for p in photos] or [0.0])),
            "median_seconds": float(np.median(seconds)), "worst_seconds": max(seconds)}


def main(argv: list[str] | None = None) -> int:
    args = manifest_arguments("python -m bench.read_photos", __doc__, "photos", argv)
    result = evaluate(args.folder, args.engine)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for p in result["photos"]:
        mark = ("found " if p["found"] else "      ") + ("exact " if p["exact"] else "      ")
        print(f"{mark}{p['file']:<14} {p['truth']:<9} {p['read']:<11} {p['seconds']:6.2f} s")
    count = max(1, result["count"])
    print(f"found {result['found']}/{result['count']}, exact {result['exact']}/{result['count']}"
          f", character accuracy {result['char_accuracy']:.3f}; seconds per photo: median "
          f"{result['median_seconds']:.2f}, worst {result['worst_seconds']:.2f} "
          f"({result['engine']}, wall time on a possibly shared machine)")
    print(f"targets: found >= {TARGET_FOUND * 30:.0f}/30 "
          f"{verdict(result['found'] / count >= TARGET_FOUND)}, exact >= "
          f"{TARGET_EXACT * 30:.0f}/30 {verdict(result['exact'] / count >= TARGET_EXACT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
