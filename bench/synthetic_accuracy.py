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

from bench.read_plates import verdict
from viewer.files import paths
from viewer.errors import ViewerError
from viewer.net.weights import load_net
from viewer.training.metrics import character_figures, test_scores


def measure(folder: Path, engine: str) -> dict:
    """The shipped classifier's figures on `folder`'s test LMDB."""
    net = load_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
    scores, test = test_scores(net, folder, engine)
    return {"test_lmdb": str(test.source), "engine": engine,
            **character_figures(scores, test.labels)}


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
