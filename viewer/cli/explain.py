"""`explain`: why one cell of the dense map says its class, by the attribution methods.

The cell is named by its map row and column (`--cell I,J`) or as the K-th letter read on the
plate (`--letter K`, from 1). Everything that can be refused (an unknown method, class or
layer, a cell outside the map, a layer without a backward) is refused before any file is
written.
"""
from __future__ import annotations

import argparse
import functools
from dataclasses import replace
from pathlib import Path

import numpy as np

from viewer.cli import batch
from viewer.cli.options import (add_batch_options, add_model_options, positive_count,
                                prepare_outputs, scale_or_auto)
from viewer.errors import ExplainError, ViewerError

EXPLAIN_COLUMNS = ("image", "cell", "class", "versus", "score", "target", "scale", "methods",
                   "layer", "files", "error")


def cell_pair(text: str) -> tuple[int, int]:
    """argparse type for --cell: I,J, the map row and column from 0."""
    try:
        i, j = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I,J (map row and column, e.g. 2,7), got "
                                         f"'{text}'") from None
    return i, j


def register(sub: argparse._SubParsersAction) -> None:
    """Add `explain` to the subcommands."""
    from viewer.maps.attribution import METHODS

    exp = sub.add_parser("explain", help="why a cell of the map says its class: attribution "
                         "maps (gradient, guided, deconv, gradcam, occlusion, integrated)")
    add_batch_options(exp)
    where = exp.add_mutually_exclusive_group(required=True)
    where.add_argument("--cell", type=cell_pair, metavar="I,J", help="the map cell (row, column)")
    where.add_argument("--letter", type=positive_count, metavar="K",
                       help="the K-th letter read on the plate, from 1")
    exp.add_argument("--class", dest="klass", metavar="C",
                     help="class to explain, by label or number (default: the cell's best)")
    exp.add_argument("--versus", metavar="C", help="explain the class against this one "
                     "(the difference of their scores: why H and not W)")
    exp.add_argument("--method", action="extend", nargs="+", metavar="M",
                     help=f"methods (--method a b, or --method a --method b): "
                     f"{', '.join(METHODS)} (default: all)")
    exp.add_argument("--layer", help="gradcam's blob (default: the last convolution before "
                     "the surgered layers)")
    exp.add_argument("--target", default="score", help="score (before the softmax, default) "
                     "or logprob")
    exp.add_argument("--scale", type=scale_or_auto, default=None,
                     help="input scale (default 1; with --letter, 'auto' as `read`)")
    exp.add_argument("--out", type=Path, required=True,
                     help="output folder (of several images: a folder per image in it)")
    add_model_options(exp)
    exp.set_defaults(func=cmd_explain)


def _cell_and_class(dense, image, args) -> tuple[float, tuple[int, int], int | None]:
    """The scale, the cell and the class a letter names (None: the cell's best)."""
    from viewer.plates import reading

    if args.letter is None:
        scale = 1.0 if args.scale in (None, "auto") else args.scale
        return scale, args.cell, None
    if args.scale in (None, "auto"):
        read, fm = reading.auto_read(dense, image)
    else:
        fm = dense.run(image, args.scale)
        read = reading.read_plate(fm)
    if not 1 <= args.letter <= len(read.letters):
        raise ExplainError(f"letter {args.letter} is not on the plate: {len(read.letters)} "
                           f"letters were read ('{read.text}')")
    letter = read.letters[args.letter - 1]
    return fm.scale, letter.cell, dense.labels.index(letter.label)


def explain_one(dense, path: Path, *, args: argparse.Namespace, many: bool,
                inputs: tuple) -> tuple[dict, str]:
    """Explain one image's cell and write explain.npz and its pictures; the summary row."""
    from viewer.maps import attribution, attribution_pictures as pictures, export, images
    from viewer.files.safe_write import write_together

    image = images.load_image(path)
    scale, cell, letter_class = _cell_and_class(dense, image, args)
    explainer = attribution.Explainer(dense)
    data = explainer.dense.prepare(image, scale)
    methods = list(dict.fromkeys(args.method or attribution.METHODS))
    explainer.check(data, cell, methods, args.layer, args.target)
    if args.klass is not None:
        channel = explainer.channel_of(args.klass)
    elif letter_class is not None:
        channel = letter_class
    else:
        channel = explainer.best_class(data, cell)
    versus = explainer.channel_of(args.versus) if args.versus is not None else None
    names = ["explain.npz", "explain_row.png", *(f"explain_{m}.png" for m in methods)]
    paths = prepare_outputs(args.out / path.stem if many else args.out, names, (path, *inputs))
    actual = (data.shape[2] / image.shape[0], data.shape[3] / image.shape[1])
    geometry = replace(explainer.dense.unit, scale=actual)
    result = explainer.explain(data, cell, channel, methods, args.layer, args.target, versus,
                               geometry)
    arrays = {"input": result.input, **result.maps, "cell": np.array(result.cell),
              "class": np.array(result.label), "channel": np.int64(channel),
              "versus": np.array(dense.labels[versus] if versus is not None else ""),
              "target": np.array(result.target), "score": np.float64(result.score),
              "layer": np.array(result.layer), "stride": np.array(geometry.stride),
              "offset": np.array(geometry.offset),
              "receptive_field": np.array(geometry.receptive_field),
              "scale": np.array(geometry.scale)}
    files = [(paths[0], lambda fh: export.write_npz(fh, arrays)),
             (paths[1], export.png_writer(pictures.method_row(result), paths[1]))]
    files += [(p, export.png_writer(pictures.overlay(result, m), p))
              for p, m in zip(paths[2:], methods)]
    written = write_together(files, (path, *inputs))
    return {"image": str(path), "cell": list(cell), "class": result.label,
            "versus": dense.labels[versus] if versus is not None else None,
            "score": round(result.score, 5), "target": result.target, "scale": scale,
            "methods": methods, "layer": result.layer,
            "files": [str(p) for p in written]}, ""


def explain_text(row: dict) -> str:
    versus = f" and not {row['versus']}" if row["versus"] else ""
    return "\n".join([f"{row['image']}: why {row['class']}{versus} at cell "
                      f"{row['cell'][0]},{row['cell'][1]} (score {row['score']:.3f}, scale "
                      f"{row['scale']:.3g}): {', '.join(row['methods'])}",
                      *(f"wrote {p}" for p in row["files"])])


def cmd_explain(args: argparse.Namespace) -> int:
    """Explain a cell of each image's map and save the maps with pictures of them."""
    from viewer.maps.attribution import METHODS, TARGETS

    unknown = [m for m in args.method or () if m not in METHODS]
    if unknown:
        raise ExplainError(f"unknown method '{unknown[0]}'; choose from {', '.join(METHODS)}")
    if args.target not in TARGETS:
        raise ExplainError(f"unknown target '{args.target}'; choose score or logprob")
    images = batch.expand_inputs(args.images)
    many = len(images) > 1
    stems = [p.stem for p in images]
    if many and len(set(stems)) < len(stems):
        raise ViewerError("two images have the same name: explain them in separate calls")
    inputs = tuple(p for p in (args.prototxt, args.weights) if p)
    task = functools.partial(explain_one, args=args, many=many, inputs=inputs)
    return batch.run_images(args, images, task, EXPLAIN_COLUMNS, explain_text)
