"""Synthetic test accuracy of the shipped classifier, checked against the model issue's target.

    python -m bench.synthetic_accuracy [DIR] [--engine NAME] [--json]

DIR is a dataset folder from `main.py dataset make` (default `out/plates`, the one `make model`
writes). Its `test_lmdb` windows were never trained on. The target is top-1 of all outputs on
centred characters, so a character that the background class wins counts as wrong. Printed
beside it: the best of the 36 character channels (the label the reader gives a letter it has
found), and that figure with O and 0 counted as one class, because several faces draw the two
alike and plates tell them apart only by their neighbours.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench.read_plates import verdict
from viewer.files import paths
from viewer.errors import ViewerError
from viewer.maps.labels import BACKGROUND, CHARACTERS
from viewer.net.weights import load_net
from viewer.plates.reading import TWINS
from viewer.training.data import TEST_LMDB, load_lmdb
from viewer.training.metrics import engine_scores, evaluation

TARGET_CHAR_ACCURACY = 0.995
TWIN_CLASSES = tuple(CHARACTERS.index(c) for c in TWINS)  # O and 0


def figures(scores: np.ndarray, labels: np.ndarray) -> dict:
    """Character and background accuracy of N x classes scores; on characters also the best of
    the character channels alone, and that with O = 0."""
    result = evaluation(scores, labels, 0)
    chars = labels != BACKGROUND
    letter = scores[chars, :len(CHARACTERS)].argmax(axis=1)
    merged, truth = (np.where(np.isin(a, TWIN_CLASSES), TWIN_CLASSES[0], a)
                     for a in (letter, labels[chars]))
    return {"windows": len(labels), "characters": int(chars.sum()),
            "char_accuracy": result.char_accuracy,
            "letter_accuracy": float((letter == labels[chars]).mean()),
            "letter_accuracy_o0_merged": float((merged == truth).mean()),
            "background_accuracy": result.background_accuracy,
            "target": TARGET_CHAR_ACCURACY,
            "target_met": result.char_accuracy >= TARGET_CHAR_ACCURACY}


def measure(folder: Path, engine: str) -> dict:
    """The shipped classifier's figures on `folder`'s test LMDB."""
    net = load_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
    test = load_lmdb(folder / TEST_LMDB)
    scores = engine_scores(net, test.images, engine)
    return {"test_lmdb": str(test.source), "engine": engine, **figures(scores, test.labels)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic_accuracy",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, nargs="?", default=Path("out/plates"))
    parser.add_argument("--engine", default="opencv")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        r = measure(args.folder, args.engine)
    except ViewerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['test_lmdb']}: {r['characters']} centred characters of {r['windows']} windows "
          f"({r['engine']})")
    print(f"characters {r['char_accuracy']:.2%}, background {r['background_accuracy']:.2%}")
    print(f"best of the character channels {r['letter_accuracy']:.2%} (O and 0 as one: "
          f"{r['letter_accuracy_o0_merged']:.2%})")
    print(f"target: characters >= {r['target']:.1%} {verdict(r['target_met'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
