"""Honest per-letter confidence: fit the reader's calibration on generated plates, check it on
real letters.

    python -m bench.calibration [--count N] [--fit] [--dev DIR] [--picture PNG] [--model NAME]

The net's softmax is sure of its wrong letters too (`M5XSSX` had a spurious S at 0.9998).
`viewer.maps.calibration` maps a letter's softmax and its agreement across the neighbouring
scales to a probability of being right; this fits that map (a logistic regression, least log
loss) on the letters the reader reads on generated plates (`viewer.dataset.plates.random_plate`
with photo effects; never on the dev set). It changes no reading. `--fit` writes the model's
calibration sidecar, where every reading finds it. `--dev DIR` reports, on the letters of the
crops of a manifest, the expected calibration error (10 equal bins) and the median confidence
of the wrong letters, for the softmax, its log-odds alone refitted (Platt) and the calibration, and
`--picture` draws the reliability diagram.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from bench.read_plates import manifest_rows, plate_dense
from viewer.dataset.plates import random_plate
from viewer.engines import DEFAULT_ENGINE
from viewer.files import paths
from viewer.maps.calibration import Calibration, calibration_path, write_calibration
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import load_image
from viewer.plates.reading import auto_read

BINS = 10
TARGET_ECE = 0.05
TARGET_WRONG = 0.6


def aligned_right(read: str, truth: str) -> list[bool]:
    """For each read character, whether an alignment of fewest edits matches it to the same
    character of the truth (a substitution or an invented letter is wrong)."""
    n, m = len(truth), len(read)
    cost = np.zeros((n + 1, m + 1), int)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1,
                             cost[i - 1, j - 1] + (truth[i - 1] != read[j - 1]))
    right = [False] * m
    i, j = n, m
    while i and j:
        if cost[i, j] == cost[i - 1, j - 1] + (truth[i - 1] != read[j - 1]):
            right[j - 1] = truth[i - 1] == read[j - 1]
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return right


def letters_of(dense: DenseClassifier, image: np.ndarray, truth: str) -> list[tuple]:
    """(softmax probability, agreement, right) of every letter read on one plate."""
    reading, _ = auto_read(dense, image)
    right = aligned_right(reading.text, truth)
    return [(l.prob, l.agreement, ok) for l, ok in zip(reading.letters, right)]


def features(letters: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """The logistic's inputs (log-odds of the softmax, agreement) and whether each is right."""
    p = np.clip(np.array([l[0] for l in letters], float), 1e-6, 1 - 1e-6)
    x = np.c_[np.log(p / (1 - p)), [l[1] for l in letters]]
    return x, np.array([l[2] for l in letters], bool)


def fit_logistic(x: np.ndarray, right: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """Least log loss weights of the columns of `x` and a bias, by Newton's method (a small
    ridge keeps them finite when the letters are all right)."""
    design = np.c_[x, np.ones(len(x))]
    w = np.zeros(design.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-design @ w))
        grad = design.T @ (p - right) + l2 * w
        hess = design.T @ (design * (p * (1 - p))[:, None]) + l2 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def confidences(letters: list[tuple], calibration: Calibration | None) -> np.ndarray:
    if calibration is None:
        return np.array([l[0] for l in letters], float)
    return np.array([calibration.confidence(p, a) for p, a, _ in letters])


def log_loss(conf: np.ndarray, right: np.ndarray) -> float:
    conf = np.clip(conf, 1e-6, 1 - 1e-6)
    return float(-np.mean(right * np.log(conf) + (1 - right) * np.log(1 - conf)))


def ece(conf: np.ndarray, right: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| of bins."""
    edges = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = edges == b
        if inside.any():
            total += inside.sum() * abs(right[inside].mean() - conf[inside].mean())
    return total / max(1, len(conf))


def figures(conf: np.ndarray, right: np.ndarray) -> dict:
    wrong = conf[~right]
    return {"letters": int(len(conf)), "wrong": int((~right).sum()),
            "ece": round(ece(conf, right), 4),
            "median_wrong": round(float(np.median(wrong)), 4) if len(wrong) else None,
            "mean_confidence": round(float(conf.mean()), 4),
            "accuracy": round(float(right.mean()), 4)}


def reliability_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path,
                    size: int = 420) -> None:
    """Accuracy against confidence in BINS bins, one coloured line per set, the diagonal."""
    pad = 50
    canvas = np.full((size + 2 * pad, size + 2 * pad, 3), 255, np.uint8)
    at = lambda x, y: (int(pad + x * size), int(pad + (1 - y) * size))   # noqa: E731
    for k in range(BINS + 1):
        cv2.line(canvas, at(k / BINS, 0), at(k / BINS, 1), (230, 230, 230), 1)
        cv2.line(canvas, at(0, k / BINS), at(1, k / BINS), (230, 230, 230), 1)
    cv2.line(canvas, at(0, 0), at(1, 1), (150, 150, 150), 1, cv2.LINE_AA)
    for v in (0.0, 0.5, 1.0):
        x, y = at(v, 0)
        cv2.putText(canvas, f"{v:g}", (x - 8, y + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (40, 40, 40), 1, cv2.LINE_AA)
        x, y = at(0, v)
        cv2.putText(canvas, f"{v:g}", (x - 30, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (40, 40, 40), 1, cv2.LINE_AA)
    colours = [(30, 90, 200), (200, 90, 30), (40, 160, 60)]
    for n, (name, (conf, right)) in enumerate(curves.items()):
        edges = np.minimum((conf * BINS).astype(int), BINS - 1)
        points = [at(conf[edges == b].mean(), right[edges == b].mean())
                  for b in range(BINS) if (edges == b).any()]
        for a, b in zip(points, points[1:]):
            cv2.line(canvas, a, b, colours[n], 2, cv2.LINE_AA)
        counts = [int((edges == b).sum()) for b in range(BINS) if (edges == b).any()]
        for p, count in zip(points, counts):     # a dot's area grows with its letters
            cv2.circle(canvas, p, int(2 + 2 * np.sqrt(count / len(conf) * BINS)), colours[n], -1,
                       cv2.LINE_AA)
        cv2.putText(canvas, name, (pad + 8, pad + 20 + 20 * n), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    colours[n], 1, cv2.LINE_AA)
    cv2.putText(canvas, "confidence", (pad + size // 2 - 40, size + pad + 35),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 40), 1, cv2.LINE_AA)
    cv2.putText(canvas, "share right", (5, pad - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (40, 40, 40), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), canvas)


def synthetic_letters(dense: DenseClassifier, count: int, seed: int) -> list[tuple]:
    """The letters read on `count` generated plates (the validation set of the fit)."""
    rng = np.random.default_rng(seed)
    letters = []
    for _ in range(count):
        plate = random_plate(rng, char_height_px=float(np.exp(rng.uniform(np.log(14),
                                                                          np.log(60)))))
        truth = "".join(c for c in plate.text if c.isalnum())
        letters += letters_of(dense, plate.image, truth)
    return letters


def dev_letters(dense: DenseClassifier, folder: Path) -> list[tuple]:
    letters = []
    for row in manifest_rows(folder):
        letters += letters_of(dense, load_image(folder / row["plate_crop_file"]),
                              row["plate_text"].strip().upper())
    return letters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calibration", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=400, help="generated plates to fit on")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--fit", action="store_true", help="write the fitted temperature")
    parser.add_argument("--dev", type=Path, help="a manifest folder of real crops to check on")
    parser.add_argument("--picture", type=Path, help="the reliability diagram (PNG)")
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    parser.add_argument("--model", choices=tuple(paths.PLATE_MODELS),
                        help="the bundled plate net (default: the strongest bundled)")
    args = parser.parse_args(argv)
    model = paths.PLATE_MODELS[args.model] if args.model else paths.strongest_plate_model()
    dense = plate_dense(model.name, args.engine)
    dense.calibration = None                 # fit on the net's own softmax
    synthetic = synthetic_letters(dense, args.count, args.seed)
    x, right = features(synthetic)
    fitted = Calibration(*map(float, fit_logistic(x, right)))
    slope, bias = fit_logistic(x[:, :1], right)         # the softmax's log-odds alone
    temperature = Calibration(float(slope), 0.0, float(bias))   # Platt scaling
    ways = {"softmax": None, "platt": temperature, "calibrated": fitted}
    report = {"calibration": vars(fitted), "fitted_on": f"{len(synthetic)} letters of "
              f"{args.count} generated plates (seed {args.seed})",
              "synthetic": {k: figures(confidences(synthetic, c), right)
                            for k, c in ways.items()}}
    curves = {}
    if args.dev:
        dev = dev_letters(dense, args.dev)
        dev_right = features(dev)[1] if dev else np.zeros(0, bool)
        report["dev"] = {k: figures(confidences(dev, c), dev_right) for k, c in ways.items()}
        curves = {"dev letters, softmax": (confidences(dev, None), dev_right),
                  "dev letters, calibrated": (confidences(dev, fitted), dev_right),
                  "generated letters, calibrated": (confidences(synthetic, fitted), right)}
    print(json.dumps(report, indent=1))
    if args.dev:
        after = report["dev"]["calibrated"]
        print(f"dev letters: ECE {after['ece']:.3f} (target <= {TARGET_ECE}), median confidence "
              f"of wrong letters {after['median_wrong']} (target < {TARGET_WRONG})")
    if args.picture and curves:
        reliability_png(curves, args.picture)
    if args.fit:
        write_calibration(calibration_path(model.prototxt), fitted, report["fitted_on"])
        print(f"wrote {calibration_path(model.prototxt)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
