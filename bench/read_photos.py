"""Plates found and read in whole photos, against the plate boxes of a manifest.

    python -m bench.read_photos DIR [--engine NAME] [--json] [--peer rapidocr]

DIR holds a `manifest.csv` with the columns `file`, `plate_text` and the plate box `x`, `y`,
`w`, `h` (the format of shared/plates-dev). Each photo is read as `read PHOTO` does; the best
plate counts as *found* when the box of its read letters overlaps the true plate box with an
IoU of at least 0.3 and its centre lies inside it, and as *exact* when its text is the plate's.
Every other plate reported on a photo (one that is not *found* on the true plate) is a false
plate. Time per photo is wall time of the whole search, on whatever else the machine is running.
The data is evaluation material only: nothing here is tuned to particular images.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.ocr_peer import make_peer, photo_plates
from bench.read_plates import manifest_arguments, manifest_rows, model_names, plate_dense, verdict
from viewer.errors import ViewerError
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import load_image
from viewer.plates.locate import find_plates
from viewer.plates.scoring import char_accuracy, is_found

# Issue 16's targets on the 30 dev photos.
TARGET_FOUND = 27 / 30
TARGET_EXACT = 18 / 30
TARGET_FALSE = 0.3       # issue 25: false plates per photo, on average


def read_photo(dense: DenseClassifier, folder: Path, row: dict) -> dict:
    """One photo of the manifest: what was read, where, and how long it took."""
    start = time.perf_counter()
    try:
        plates = find_plates(dense, load_image(folder / row["file"])).plates
    except ViewerError as err:
        plates = []
        print(f"warning: {row['file']}: {err}", file=sys.stderr)
    seconds = time.perf_counter() - start
    return photo_result(row, [(p.text, p.box, p.scale) for p in plates], seconds)


def photo_result(row: dict, plates: list[tuple[str, tuple, float | None]],
                 seconds: float) -> dict:
    """One photo's figures from the (text, box, scale) of the plates a reader reported, best
    first: the best one's text and whether it was found, and how many others are false."""
    truth = row["plate_text"].strip().upper()
    true_box = tuple(float(row[k]) for k in ("x", "y", "w", "h"))
    text, box, scale = plates[0] if plates else ("", None, None)
    return {"file": row["file"], "truth": truth, "read": text,
            "box": [round(v, 1) for v in box] if box else None,
            "scale": scale, "found": is_found(box, true_box),
            "false_plates": sum(not is_found(b, true_box) for _, b, _ in plates),
            "exact": text == truth, "char_accuracy": char_accuracy(text, truth),
            "seconds": round(seconds, 2)}


def read_photo_peer(peer, folder: Path, row: dict) -> dict:
    """One photo read by a general OCR (`bench.ocr_peer`): its plate-like lines."""
    start = time.perf_counter()
    lines = photo_plates(peer.lines(folder / row["file"]))
    seconds = time.perf_counter() - start
    return photo_result(row, [(line.text, line.box, None) for line in lines], seconds)


def evaluate(folder: Path, engine: str, model: str) -> dict:
    """Search every photo of the manifest with the bundled plate model `model`, and collect
    per-photo results and the figures."""
    dense = plate_dense(model, engine)
    rows = manifest_rows(folder)
    return summary([read_photo(dense, folder, row) for row in rows], model)


def evaluate_peer(folder: Path, name: str) -> dict:
    """The same photos read by a general OCR, scored the same way."""
    peer = make_peer(name)
    return summary([read_photo_peer(peer, folder, row) for row in manifest_rows(folder)], name)


def summary(photos: list[dict], reader: str) -> dict:
    """A reader's figures over the photos: found, exact, false plates, time."""
    seconds = [p["seconds"] for p in photos] or [0.0]
    return {"photos": photos, "count": len(photos), "engine": reader,
            "found": sum(p["found"] for p in photos), "exact": sum(p["exact"] for p in photos),
            "false_plates": sum(p["false_plates"] for p in photos),
            "char_accuracy": float(np.mean([p["char_accuracy"] for p in photos] or [0.0])),
            "median_seconds": float(np.median(seconds)), "worst_seconds": max(seconds)}


def main(argv: list[str] | None = None) -> int:
    args = manifest_arguments("python -m bench.read_photos", __doc__, "photos", argv)
    first, *others = model_names(args)
    result = evaluate(args.folder, args.engine, first)
    peers = [evaluate(args.folder, args.engine, name) for name in others] + \
        [evaluate_peer(args.folder, name) for name in args.peer]
    if args.json:
        print(json.dumps({**result, "peers": peers} if peers else result, indent=2))
        return 0
    for p in result["photos"]:
        mark = ("found " if p["found"] else "      ") + ("exact " if p["exact"] else "      ")
        print(f"{mark}{p['file']:<14} {p['truth']:<9} {p['read']:<11} {p['seconds']:6.2f} s"
              + (f", {p['false_plates']} false" if p["false_plates"] else ""))
    count = max(1, result["count"])
    print(f"found {result['found']}/{result['count']}, exact {result['exact']}/{result['count']}"
          f", false plates {result['false_plates'] / count:.2f} per photo"
          f", character accuracy {result['char_accuracy']:.3f}; seconds per photo: median "
          f"{result['median_seconds']:.2f}, worst {result['worst_seconds']:.2f} "
          f"({result['engine']}, wall time on a possibly shared machine)")
    print(f"targets: found >= {TARGET_FOUND * 30:.0f}/30 "
          f"{verdict(result['found'] / count >= TARGET_FOUND)}, exact >= "
          f"{TARGET_EXACT * 30:.0f}/30 {verdict(result['exact'] / count >= TARGET_EXACT)}, "
          f"false plates <= {TARGET_FALSE} per photo "
          f"{verdict(result['false_plates'] / count <= TARGET_FALSE)}")
    for peer in peers:
        print_peer(result, peer)
    return 0


def print_peer(ours: dict, peer: dict) -> None:
    """Both readers' figures over the same photos, in one run."""
    for figures in (ours, peer):
        count = max(1, figures["count"])
        print(f"{figures['engine']:<9} found {figures['found']}/{figures['count']}, exact "
              f"{figures['exact']}/{figures['count']}, false plates "
              f"{figures['false_plates'] / count:.2f} per photo, character accuracy "
              f"{figures['char_accuracy']:.3f}, median {figures['median_seconds']:.2f} s "
              f"per photo")


if __name__ == "__main__":
    sys.exit(main())
