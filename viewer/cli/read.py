"""`read`: the plate text of images, with per-letter confidences."""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

from viewer.cli import batch
from viewer.cli.options import (add_batch_options, add_model_options, add_stride_option,
                                dense_from_args, scale_or_auto)
from viewer.errors import ModelError


def register(sub: argparse._SubParsersAction) -> None:
    """Add `read` to the subcommands."""
    read = sub.add_parser("read", help="read the plate text with per-letter confidence")
    add_batch_options(read)
    read.add_argument("--scale", type=scale_or_auto, default="auto",
                      help="input scale, or 'auto' to search for the best fit (default)")
    read.add_argument("--out", type=Path, help="write the results to this file, not stdout")
    read.add_argument("--resume", action="store_true",
                      help="with --out FILE.jsonl: skip the images already in it and append "
                      "the rest a line at a time (go on with a stopped run)")
    read.add_argument("--region", type=region_box, metavar="X,Y,W,H",
                      help="read only this region of the image, in its pixels")
    add_model_options(read, strongest=True)
    add_stride_option(read)
    read.set_defaults(func=cmd_read)


def plate_reader_from_args(args: argparse.Namespace):
    """The DenseClassifier of `read`, refused for a model whose classes are not our plate
    characters: the reader would print letters from class numbers that mean something else."""
    from viewer.maps.labels import is_plate_model, plate_labels_problem

    dense = dense_from_args(args)
    problem = plate_labels_problem(dense.labels)
    if problem:
        raise ModelError(f"read cannot use this model: {problem}")
    if not is_plate_model(dense.labels):
        raise ModelError("read finds plate characters, and this model's classes are not the "
                         "plate labels (A-Z, 0-9, background): use `map` to see its classes")
    return dense


READ_COLUMNS = ("image", "text", "scale", "weakest", "engine", "error")


def read_one(dense, path: Path, *, scale: float | str,
             region: tuple[int, int, int, int] | None = None) -> tuple[dict, str]:
    """Read the plates of one image (or of its --region) with per-letter confidences: the
    row and the engine note. With `--scale auto` plates are searched for (`locate`), and the
    best one's text and letters lead; at a given scale the picture is read as one plate."""
    from viewer.maps import images
    from viewer.plates import locate

    image = images.load_image(path)
    region = region or (0, 0, image.shape[1], image.shape[0])
    if scale == "auto":
        photo = locate.read_region(dense, image, region)
    else:
        photo = locate.read_region_at(dense, image, region, scale)
    fm = photo.maps[-1]
    weakest = photo.best.reading.weakest if photo.best else 0.0
    return {"image": str(path), **photo.as_dict(), "weakest": round(weakest, 4),
            "engine": fm.engine}, fm.engine_note


def read_text(row: dict, many: bool) -> str:
    letters = "  ".join(f"{l['label']} {l['confidence']:.2f}" for l in row["letters"])
    line = f"{row['text'] or '(nothing read)'}  (scale {row['scale']:.3g})  {letters}"
    return f"{row['image']}: {line}" if many else line


def region_box(text: str) -> tuple[int, int, int, int]:
    """argparse type for --region: x,y,w,h in whole pixels, width and height at least 1."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected x,y,w,h in whole pixels (e.g. 120,80,200,60), got '{text}'") from None
    if min(x, y) < 0 or min(w, h) < 1:
        raise argparse.ArgumentTypeError(
            f"x and y must be at least 0, width and height at least 1, got '{text}'")
    return x, y, w, h


def cmd_read(args: argparse.Namespace) -> int:
    """Read the plate text of images with per-letter confidences."""
    images = batch.expand_inputs(args.images)
    task = functools.partial(read_one, scale=args.scale, region=args.region)
    return batch.run_images(args, images, task, READ_COLUMNS,
                      functools.partial(read_text, many=len(images) > 1), args.out,
                      plate_reader_from_args)
