"""Plate reading accuracy on a folder of plate crops with ground truth.

    python -m bench.read_plates DIR [--engine NAME] [--json] [--peer rapidocr] [--model NAME ...]

DIR holds a `manifest.csv` with at least the columns `plate_text` and `plate_crop_file` (the
format of shared/plates-dev). Each crop is read with `read --scale auto`; the figures are the
mean character accuracy (1 - edit distance / length of the truth) and the share of plates read
exactly. The data is evaluation material only: nothing here is tuned to particular images.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.ocr_peer import PEERS, crop_text, make_peer
from viewer.files import paths
from viewer.engines import DEFAULT_ENGINE
from viewer.errors import ViewerError
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import load_image
from viewer.net.weights import load_net
from viewer.plates.reading import auto_read
from viewer.plates.scoring import char_accuracy, reading_figures

# Issue 14's targets for real plates (Tesseract 5 reaches 0.63 and 4 of 30 on the dev set), and
# no plate read with fewer than half of its characters (`scoring.COLLAPSED`).
TARGET_CHAR_ACCURACY = 0.95
TARGET_EXACT_SHARE = 0.80


def plate_dense(model: str, engine: str) -> DenseClassifier:
    """The surgered twin of the bundled plate model named `model`, on `engine`."""
    chosen = paths.PLATE_MODELS[model]
    return DenseClassifier(load_net(chosen.fcn_prototxt, chosen.fcn_weights), engine)


def evaluate(folder: Path, engine: str, model: str) -> dict:
    """Read every crop of the manifest and collect per-plate results and the two figures."""
    dense = plate_dense(model, engine)
    rows = manifest_rows(folder)
    plates = []
    for row in rows:
        truth = row["plate_text"].strip().upper()
        start = time.perf_counter()
        try:
            reading, _ = auto_read(dense, load_image(folder / row["plate_crop_file"]))
            text, scale = reading.text, reading.scale
        except ViewerError as err:
            text, scale = "", None
            print(f"warning: {row['plate_crop_file']}: {err}", file=sys.stderr)
        plates.append({"file": row["plate_crop_file"], "truth": truth, "read": text,
                       "scale": scale, "char_accuracy": char_accuracy(text, truth),
                       "exact": text == truth,
                       "ms": round((time.perf_counter() - start) * 1000, 1)})
    return summary(plates, model)


def summary(plates: list[dict], reader: str) -> dict:
    """The figures of one reader's crops: accuracy, exact plates, errors, median time."""
    figures = reading_figures([(p["read"], p["truth"]) for p in plates])
    return {"plates": plates, "count": len(plates), "engine": reader,
            "median_seconds": float(np.median([p["ms"] / 1000 for p in plates] or [0.0])),
            **{k: figures[k] for k in ("errors", "collapsed", "char_accuracy", "exact",
                                       "exact_share")}}


def evaluate_peer(folder: Path, name: str) -> dict:
    """The same crops read by a general OCR (`bench.ocr_peer`), scored the same way."""
    peer = make_peer(name)
    plates = []
    for row in manifest_rows(folder):
        truth = row["plate_text"].strip().upper()
        start = time.perf_counter()
        text = crop_text(peer.crop_lines(folder / row["plate_crop_file"]))
        plates.append({"file": row["plate_crop_file"], "truth": truth, "read": text,
                       "scale": None, "char_accuracy": char_accuracy(text, truth),
                       "exact": text == truth,
                       "ms": round((time.perf_counter() - start) * 1000, 1)})
    return summary(plates, name)


def manifest_rows(folder: Path) -> list[dict]:
    """The rows of `folder`/manifest.csv; SystemExit with one line when it cannot be read."""
    try:
        with open(folder / "manifest.csv", newline="") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise SystemExit(f"error: cannot read {folder / 'manifest.csv'}: "
                         f"{getattr(err, 'strerror', None) or err}") from None


def manifest_arguments(prog: str, doc: str, images: str,
                       argv: list[str] | None) -> argparse.Namespace:
    """The arguments of a benchmark over a manifest folder: the folder, --engine, --json."""
    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help=f"folder with manifest.csv and the {images}")
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    parser.add_argument("--json", action="store_true", help=f"print every one of the {images} "
                        "as JSON")
    parser.add_argument("--peer", action="append", choices=PEERS, default=[],
                        help="also read them with this general OCR (the `bench` extra)")
    parser.add_argument("--model", action="append", choices=tuple(paths.PLATE_MODELS),
                        help="the bundled plate net to read with; again for another one, "
                        "shown beside the first (default: the strongest bundled)")
    return parser.parse_args(argv)


def model_names(args: argparse.Namespace) -> list[str]:
    """The plate models a run reads with: --model's, or the strongest bundled one."""
    return args.model or [paths.strongest_plate_model().name]


def main(argv: list[str] | None = None) -> int:
    args = manifest_arguments("python -m bench.read_plates", __doc__, "crops", argv)
    first, *others = model_names(args)
    result = evaluate(args.folder, args.engine, first)
    peers = [evaluate(args.folder, args.engine, name) for name in others] + \
        [evaluate_peer(args.folder, name) for name in args.peer]
    if args.json:
        print(json.dumps({**result, "peers": peers} if peers else result, indent=2))
        return 0
    for p in result["plates"]:
        mark = "ok " if p["exact"] else "   "
        scale = f"{p['scale']:.2f}" if p["scale"] else "-"
        print(f"{mark}{p['file']:<22} {p['truth']:<9} {p['read']:<11} scale {scale}")
    print(f"character accuracy {result['char_accuracy']:.3f}, exact "
          f"{result['exact']}/{result['count']} ({result['exact_share']:.0%}), "
          f"{result['collapsed']} read with under half of their characters")
    print("errors: " + (", ".join(f"{k} {v}" for k, v in result["errors"].items()) or "none"))
    print(f"targets: character accuracy >= {TARGET_CHAR_ACCURACY:.2f} "
          f"{verdict(result['char_accuracy'] >= TARGET_CHAR_ACCURACY)}, exact >= "
          f"{TARGET_EXACT_SHARE:.0%} {verdict(result['exact_share'] >= TARGET_EXACT_SHARE)}, "
          f"none under half {verdict(result['collapsed'] == 0)}")
    for peer in peers:
        print_peer(result, peer)
    return 0


def print_peer(ours: dict, peer: dict) -> None:
    """A peer's readings where they differ from ours, and both readers' figures."""
    for mine, theirs in zip(ours["plates"], peer["plates"]):
        if theirs["read"] != mine["read"]:
            print(f"{peer['engine']}: {theirs['file']:<22} {theirs['truth']:<9} "
                  f"{theirs['read']:<11} (ours {mine['read']})")
    for figures in (ours, peer):
        print(f"{figures['engine']:<9} character accuracy {figures['char_accuracy']:.3f}, "
              f"exact {figures['exact']}/{figures['count']}, median "
              f"{figures['median_seconds']:.2f} s per crop")


def verdict(met: bool) -> str:
    """How the benchmarks print a target: "met", or "MISSED" so that it stands out."""
    return "met" if met else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
