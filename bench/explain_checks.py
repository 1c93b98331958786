"""Checks that the attribution methods say something about the net, beyond agreeing with Caffe.

    python -m bench.explain_checks [DIR] [--limit N] [--json]

`sanity` (Adebayo et al. 2018, cascading randomisation): the plate LeNet's learned layers are
replaced by random ones from the top down (ip2, ip1, conv2, conv1); after each step every
method explains the same cells again, and the Spearman rank correlation of |map| with the
trained net's |map| over each cell's window is averaged. A method that reads the net must
drift: below 0.5 by conv1. A method whose correlation stays high is drawing the input, not
the net (guided backpropagation is known to).

`deletion` (on DIR, a folder of plate crops with a manifest.csv as shared/plates-dev): for
each correctly read letter, the pixels of its 28x28 window are greyed in each method's order
(most attributed first) and in a random order, 10% at a time, and the letter's probability
at its cell is measured after each step (one batched pass per letter). The area under that
curve is reported per method: lower is better, and every method should be below random.
The data is evaluation material only and is never copied.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from viewer.caffe.model_io import CaffeNet
from viewer.files import paths
from viewer.maps.attribution import METHODS, Explainer, cell_crop
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import load_image
from viewer.engines.ops import softmax
from viewer.net.weights import load_net
from viewer.plates.reading import auto_read

TOP_DOWN = ("ip2-alpha-conv", "ip1-conv", "conv2", "conv1")
FRACTIONS = np.linspace(0, 1, 11)


def letters_of(dense: DenseClassifier, image: np.ndarray, truth: str | None = None) -> list:
    """(prepared input, cell, channel) of each letter read (with `truth`: read right)."""
    reading, fm = auto_read(dense, image)
    data = dense.prepare(image, fm.scale)
    found = []
    for k, letter in enumerate(reading.letters):
        if truth is not None and (len(reading.letters) != len(truth) or letter.label != truth[k]):
            continue
        found.append((data, letter.cell, dense.labels.index(letter.label)))
    return found


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their mean rank (as Spearman's coefficient needs)."""
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (first + (counts + 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (numpy only); 1 for two identical constant inputs."""
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def _window(explanation) -> tuple[slice, slice]:
    g, (i, j) = explanation.geometry, explanation.cell
    top, left = g.offset[0] + i * g.stride[0], g.offset[1] + j * g.stride[1]
    return slice(max(0, top), top + g.receptive_field[0]), \
        slice(max(0, left), left + g.receptive_field[1])


def randomised(net: CaffeNet, layers: tuple[str, ...], seed: int = 0) -> CaffeNet:
    """The net with `layers` given random weights of the trained ones' spread."""
    rng = np.random.default_rng(seed)
    weights = {name: [b.copy() for b in blobs] for name, blobs in net.weights.items()}
    for name in layers:
        weights[name] = [rng.normal(0, float(b.std()) or 0.01, b.shape).astype(np.float32)
                         for b in weights[name]]
    return CaffeNet(net.param, weights, source=net.source)


def sanity(cases: list, net: CaffeNet) -> dict:
    """Mean rank correlation per method after randomising each layer from the top down."""
    trained = Explainer(DenseClassifier(net, "numpy"))
    before = [trained.explain(d, cell, c, METHODS) for d, cell, c in cases]
    table = {}
    for depth in range(1, len(TOP_DOWN) + 1):
        explainer = Explainer(DenseClassifier(randomised(net, TOP_DOWN[:depth]), "numpy"))
        scores = {m: [] for m in METHODS}
        for (d, cell, c), old in zip(cases, before):
            new = explainer.explain(d, cell, c, METHODS)
            rows, cols = _window(old)
            for m in METHODS:
                a = np.abs(old.picture(m)[rows, cols]).ravel()
                b = np.abs(new.picture(m)[rows, cols]).ravel()
                scores[m].append(spearman(a, b))
        table[TOP_DOWN[depth - 1]] = {m: round(float(np.mean(v)), 3) for m, v in scores.items()}
    last = table[TOP_DOWN[-1]]
    return {"letters": len(cases), "rank_correlation": table,
            "flagged": [m for m in METHODS if last[m] >= 0.5]}


def deletion(cases: list, dense: DenseClassifier, seed: int = 0) -> dict:
    """Area under the letter's probability as its window is greyed, per method and random."""
    explainer = Explainer(dense)
    rng = np.random.default_rng(seed)
    areas = {m: [] for m in (*METHODS, "random")}
    for data, cell, channel in cases:
        result = explainer.explain(data, cell, channel, METHODS)
        crop = cell_crop(explainer.field, cell, data.shape[2:])
        rows, cols = _window(result)
        part = crop.take(data)
        rows = slice(rows.start - crop.y0, rows.stop - crop.y0)
        cols = slice(cols.start - crop.x0, cols.stop - crop.x0)
        size = part[0, 0, rows, cols].size
        orders = {m: np.argsort(-result.picture(m)[_window(result)].ravel(), kind="stable")
                  for m in METHODS}
        orders["random"] = rng.permutation(size)
        batch = []
        for order in orders.values():
            for f in FRACTIONS:
                copy = part[0].copy()
                window = copy[:, rows, cols].reshape(copy.shape[0], -1)
                window[:, order[:round(f * size)]] = explainer.fill[:, None]
                copy[:, rows, cols] = window.reshape(copy.shape[0], rows.stop - rows.start, -1)
                batch.append(copy)
        scores = dense.engine.forward(np.stack(batch), [dense.score_blob])[dense.score_blob]
        probs = softmax(scores[:, :, crop.cell[0], crop.cell[1]], axis=1)[:, channel]
        for k, name in enumerate(orders):
            curve = probs[k * len(FRACTIONS):(k + 1) * len(FRACTIONS)]
            areas[name].append(float(np.trapezoid(curve, FRACTIONS)))
    return {"letters": len(cases),
            "area": {m: round(float(np.mean(v)), 3) for m, v in areas.items()},
            "below_random": [m for m in METHODS if np.mean(areas[m]) < np.mean(areas["random"])]}


def dev_cases(folder: Path, dense: DenseClassifier, limit: int) -> list:
    with open(folder / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:limit]
    cases = []
    for row in rows:
        cases += letters_of(dense, load_image(folder / row["plate_crop_file"]),
                            row["plate_text"].strip().upper())
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.explain_checks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="plate crops with manifest.csv")
    parser.add_argument("--limit", type=int, default=30, help="crops of the folder to use")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args(argv)
    net = load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS)
    dense = DenseClassifier(net, "numpy")
    sample = letters_of(dense, load_image(paths.SAMPLE_PLATE))
    report = {"sanity_sample": sanity(sample, net)}
    if args.folder:
        cases = dev_cases(args.folder, dense, args.limit)
        report["sanity_dev"] = sanity(cases, net)
        report["deletion_dev"] = deletion(cases, dense)
    report["deletion_sample"] = deletion(sample, dense)
    if not args.json:
        for name, section in report.items():
            print(f"{name} ({section['letters']} letters):")
            if "rank_correlation" in section:
                for layer, row in section["rank_correlation"].items():
                    print(f"  randomised down to {layer}: " +
                          ", ".join(f"{m} {v:.2f}" for m, v in row.items()))
                print(f"  still >= 0.5 at conv1: {', '.join(section['flagged']) or 'none'}")
            else:
                print("  area under the probability: " +
                      ", ".join(f"{m} {v:.3f}" for m, v in section["area"].items()))
                print(f"  below random: {', '.join(section['below_random'])}")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
