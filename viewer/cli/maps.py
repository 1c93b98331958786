"""`map`: the dense class maps of images, saved with pictures of them."""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

from viewer.cli import batch
from viewer.cli.options import (add_batch_options, add_model_options, add_stride_option,
                                command_inputs, positive_scale, prepare_outputs)
from viewer.errors import ViewerError, shown


def register(sub: argparse._SubParsersAction) -> None:
    """Add `map` to the subcommands."""
    fmap = sub.add_parser("map", help="compute the dense class maps of images")
    add_batch_options(fmap)
    fmap.add_argument("--scale", type=positive_scale, default=1.0,
                      help="input scale (default 1)")
    fmap.add_argument("--out", type=Path, required=True,
                      help="output folder (of several images: a folder per image in it)")
    add_model_options(fmap)
    add_stride_option(fmap)
    fmap.set_defaults(func=cmd_map)


MAP_FILES = ("featuremap.npz", "heatmap_best.png", "conv1_grid.png")
MAP_COLUMNS = ("image", "engine", "scale", "output_shape", "stride", "offset",
               "receptive_field", "padded_field", "forward_ms", "files", "error")


def map_one(dense, path: Path, *, scale: float, out: Path, many: bool,
            inputs: tuple) -> tuple[dict, str]:
    """Map one image and write its npz and pictures into `out` (of several images: into
    `out`/its name); the summary row and the engine note."""
    from viewer.maps import export, images, render
    from viewer.files.safe_write import write_together

    image = images.load_image(path)
    plan = dense.planner.check_scale(image.shape, scale, pictures=True)  # the overlay must fit too
    inputs = (path, *inputs)
    npz, overlay, grid = prepare_outputs(out / folder_name(path) if many else out, MAP_FILES,
                                         inputs)
    # A warm-up run steadies the timing of one short pass; a lean fallback pass is seconds
    # long, and running it twice would double the wait for no better figure. In a batch the
    # earlier images warm the engine.
    fm = dense.run(image, scale, warm=not many and not plan.note, pictures=True)
    # Drawn first, then written together: a failure leaves no npz without its pictures.
    outputs = {"npz": (npz, export.npz_writer(fm)),
               "overlay": (overlay, export.png_writer(render.overlay_best_class(image, fm),
                                                      overlay))}
    if fm.conv1 is not None:
        outputs["conv1"] = (grid, export.png_writer(render.tile_channels(fm.conv1), grid))
    files = dict(zip(outputs, write_together(list(outputs.values()), inputs)))
    return {
        "image": str(path), "engine": fm.engine, "scale": scale,
        "output_shape": list(fm.probs.shape), "stride": list(fm.geometry.stride),
        "offset": list(fm.geometry.offset),
        "receptive_field": list(fm.geometry.receptive_field),
        "padded_field": list(fm.geometry.padded_field or fm.geometry.receptive_field),
        "padded_offset": list(fm.geometry.padded_offset or fm.geometry.offset),
        "forward_ms": round(fm.forward_ms, 3), "files": {k: str(v) for k, v in files.items()},
    }, fm.engine_note


def folder_name(image: Path) -> str:
    """The folder under --out of one image of a batch: its stem, or its whole name when the
    stem is only dots (`...png` has the stem `..`, which would be --out's parent)."""
    stem = image.stem
    if stem.strip("."):
        return stem
    return image.name if image.name.strip(".") else f"image{image.name}"


def padded_text(row: dict) -> str:
    """" (padded field 355)" when padding makes the layers see beyond the window."""
    field = row["padded_field"]
    return "" if field == row["receptive_field"] else f" (padded field {field[0]})"


def map_text(row: dict) -> str:
    c, h, w = row["output_shape"]
    return "\n".join([f"{row['image']}: {c} classes x {h} x {w} cells, stride "
                      f"{row['stride'][0]}, window {row['receptive_field'][0]}"
                      f"{padded_text(row)}, "
                      f"{row['forward_ms']:.1f} ms ({row['engine']})",
                      *(f"wrote {path}" for path in row["files"].values())])


def cmd_map(args: argparse.Namespace) -> int:
    """Compute the dense maps of images and save them with pictures of them (one image: into
    --out; several: into a folder per image there, named by the image)."""
    images = batch.expand_inputs(args.images)
    many = len(images) > 1
    stems = [folder_name(p) for p in images]
    if many and len(set(stems)) < len(stems):
        twin = next(s for s in stems if stems.count(s) > 1)
        raise ViewerError(f"two images are named '{shown(twin)}': map them in separate calls, "
                          "since each image's maps go into a folder of its name under --out")
    if args.cluster and not args.paths_on_workers:
        raise ViewerError("map --cluster writes its files on the workers: give "
                          "--paths-on-workers, with the images and --out in a folder they share")
    inputs = command_inputs(args)
    task = functools.partial(map_one, scale=args.scale, out=args.out, many=many, inputs=inputs)
    return batch.run_images(args, images, task, MAP_COLUMNS, map_text)
