"""Command line: `view`, `surgery`, `map` and the other subcommands, one small function each.

Every failure a user can cause is a `ViewerError` and comes out as one `error: ...` line on
stderr with exit code 2; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Sequence

from viewer.net.weights import load_net
from viewer import __version__
from viewer.files import paths
from viewer.cli.argtypes import positive_count
from viewer.cli import dataset as dataset_cli
from viewer.cli import train as training_cli
from viewer.errors import ModelError, ViewerError
from viewer.cli.preprocess_options import add_preprocess_options, settings_from_args

EXIT_USER_ERROR = 2
EXIT_CHECK_FAILED = 3


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--prototxt/--weights (default: the bundled surgered model) and --engine."""
    from viewer.engines import DEFAULT_ENGINE, engine_names

    parser.add_argument("--prototxt", type=Path, help="net structure (classifier or fully "
                        "convolutional; default: the bundled surgered LeNet)")
    parser.add_argument("--weights", type=Path, help="the .caffemodel that goes with --prototxt")
    parser.add_argument("--engine", default=DEFAULT_ENGINE, choices=engine_names(),
                        help=f"inference engine (default: {DEFAULT_ENGINE})")
    add_preprocess_options(parser)


def add_stride_option(parser: argparse.ArgumentParser) -> None:
    """--stride N: a map cell every N pixels, N dividing the net's own stride (a fine map)."""
    parser.add_argument("--stride", type=positive_count, default=None,
                        help="a map cell every N pixels of the scaled image; N divides the "
                        "net's stride (LeNet: 1, 2 or 4; default: the net's stride)")


def load_model_args(args: argparse.Namespace):
    """The net named by --prototxt/--weights, or the bundled fully convolutional one."""
    from viewer.net.weights import load_net

    if (args.prototxt is None) != (args.weights is None):
        raise ViewerError("give --prototxt and --weights together")
    if args.prototxt is None:
        return load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS)
    net = load_net(args.prototxt, args.weights)
    print_warnings(net.warnings)
    return net


def print_warnings(warnings: Sequence[str]) -> None:
    """The prototxt's ignored fields (a typo such as `weight_filer`), one `warning:` line each
    on stderr: the net runs, but not as its author meant."""
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def prepare_outputs(folder: Path, names: Sequence[str], inputs: tuple) -> list[Path]:
    """Create --out and check every file to be written there, before any long work."""
    from viewer.files.safe_write import check_output_path, prepare_output_folder

    prepare_output_folder(folder)
    return [check_output_path(folder / name, inputs) for name in names]


def print_json(data: dict) -> None:
    print(json.dumps(data, indent=2))


def cmd_surgery(args: argparse.Namespace) -> int:
    """Make a classifier fully convolutional, write it, and verify the equivalence."""
    from viewer import surgery
    from viewer.caffe import model_io
    from viewer.maps.preprocess import sidecar_path, write_net_with_settings

    classifier = load_net(args.prototxt, args.weights)
    print_warnings(classifier.warnings)
    settings = settings_from_args(args, classifier)
    inputs = tuple(p for p in (args.prototxt, args.weights, args.fcn_prototxt, args.mean,
                               args.labels, args.train_prototxt) if p)
    stem = args.weights.stem
    out_proto, out_weights, out_sidecar = prepare_outputs(
        args.out, [f"{stem}_fullconv.prototxt", f"{stem}_fullconv.caffemodel",
                   sidecar_path(f"{stem}_fullconv.prototxt").name], inputs)
    if args.fcn_prototxt:
        target, warnings = model_io.read_prototxt(args.fcn_prototxt)
        print_warnings(warnings)
        result = surgery.transplant(classifier, target, str(args.fcn_prototxt))
    else:
        result = surgery.make_fully_convolutional(classifier)
    check = surgery.verify_equivalence(classifier, result.net, count=args.check_count,
                                       engine=args.engine, transformer=settings.transformer)
    write_net_with_settings(result.net, out_proto, out_weights, settings, inputs)
    if args.json:
        print_json({"prototxt": str(out_proto), "weights": str(out_weights),
                    "preprocessing": str(out_sidecar),
                    "layers": [c.as_dict() for c in result.conversions],
                    "max_abs_diff": check.max_abs_diff, "inputs_checked": check.inputs,
                    "engine": check.engine, "passed": check.passed})
    else:
        for c in result.conversions:
            print(surgery.conversion_text(c))
        print(f"wrote {out_proto}\nwrote {out_weights}\nwrote {out_sidecar} "
              f"({settings.transformer.describe()})")
        verdict = "ok" if check.passed else "FAILED"
        print(f"equivalence on {check.inputs} windows ({check.engine}): max |diff| = "
              f"{check.max_abs_diff:.3g} {verdict}")
    return 0 if check.passed else EXIT_CHECK_FAILED


def positive_scale(text: str) -> float:
    """argparse type for --scale: a positive finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"scale must be a positive number, got {value:g}")
    return value


def scale_or_auto(text: str) -> float | str:
    """argparse type for --scale: a positive number or `auto`."""
    if text == "auto":
        return text
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got '{text}'") from None
    return positive_scale(text)


def dense_from_args(args: argparse.Namespace):
    """The DenseClassifier of the model options with its preprocessing: what `read` and `map`
    run, once per process."""
    from viewer.maps.featuremap import DenseClassifier

    net = load_model_args(args)
    return DenseClassifier(net, args.engine, getattr(args, "stride", None),
                           settings_from_args(args, net))


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    """The images (files, folders, globs), --format and --jobs of `read` and `map`."""
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files, folders of images, or quoted globs ('crops/*.png')")
    parser.add_argument("--format", choices=("text", "jsonl", "csv"), default="text",
                        help="results as text lines, JSON lines or CSV (default: text)")
    parser.add_argument("--json", action="store_const", dest="format", const="jsonl",
                        help="same as --format jsonl")
    parser.add_argument("--jobs", type=positive_count, default=1,
                        help="processes to spread the images over (default 1)")


def plate_reader_from_args(args: argparse.Namespace):
    """The DenseClassifier of `read`, refused for a model whose classes are not our plate
    characters: the reader would print letters from class numbers that mean something else."""
    from viewer.maps.labels import is_plate_model

    dense = dense_from_args(args)
    if not is_plate_model(dense.labels):
        raise ModelError("read finds plate characters, and this model's classes are not the "
                         "plate labels (A-Z, 0-9, background): use `map` to see its classes")
    return dense


def run_images(args: argparse.Namespace, images: list[Path], task, columns: Sequence[str],
               text_line, out_file: Path | None = None, setup=dense_from_args) -> int:
    """Run `task` on every image and write the results as they come, on stdout or
    atomically into `out_file`; exit 2 when some image failed. `setup(args)` makes the model."""
    import io

    from viewer.cli import batch
    from viewer.files.safe_write import write_atomic

    outcomes = batch.run_batch(images, functools.partial(setup, args), task,
                               args.jobs, args.debug)

    def write(stream) -> int:
        return batch.write_outcomes(stream, outcomes, args.format, columns, text_line)

    if out_file is None:
        failed = write(sys.stdout)
    else:
        failed = 0

        def write_file(fh) -> None:
            nonlocal failed
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
            failed = write(text)
            text.flush()
            text.detach()
        write_atomic(out_file, write_file, images)
    return EXIT_USER_ERROR if failed else 0


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
    plan = dense.check_scale(image.shape, scale, pictures=True)  # the overlay must fit too
    inputs = (path, *inputs)
    npz, overlay, grid = prepare_outputs(out / path.stem if many else out, MAP_FILES, inputs)
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
    from viewer.cli import batch

    images = batch.expand_inputs(args.images)
    many = len(images) > 1
    stems = [p.stem for p in images]
    if many and len(set(stems)) < len(stems):
        twin = next(s for s in stems if stems.count(s) > 1)
        raise ViewerError(f"two images are named '{twin}': map them in separate calls, since "
                          "each image's maps go into a folder of its name under --out")
    inputs = tuple(p for p in (args.prototxt, args.weights) if p)
    task = functools.partial(map_one, scale=args.scale, out=args.out, many=many, inputs=inputs)
    return run_images(args, images, task, MAP_COLUMNS, map_text)


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
    letters = "  ".join(f"{l['label']} {l['prob']:.2f}" for l in row["letters"])
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
    from viewer.cli import batch

    images = batch.expand_inputs(args.images)
    task = functools.partial(read_one, scale=args.scale, region=args.region)
    return run_images(args, images, task, READ_COLUMNS,
                      functools.partial(read_text, many=len(images) > 1), args.out,
                      plate_reader_from_args)


def cmd_export(args: argparse.Namespace) -> int:
    """Write the surgered net as a standalone ONNX model with its geometry and labels."""
    from viewer.maps import export

    inputs = tuple(p for p in (args.prototxt, args.weights) if p)
    out = prepare_outputs(args.onnx.parent, [args.onnx.name], inputs)[0]
    dense = dense_from_args(args)
    print(f"wrote {export.save_onnx(dense, out, inputs)}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """Open the desktop viewer."""
    from viewer.cli.view import run_view

    return run_view(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netsurgery-viewer",
        description="See what a fully convolutional Caffe net sees on license plates.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")

    view = sub.add_parser("view", help="open the viewer (the default command)")
    view.add_argument("image", nargs="?", type=Path, help="plate image (default: the sample)")
    view.add_argument("--scale", type=positive_scale, default=None, help="input scale, e.g. 0.9")
    view.add_argument("--channel", help="class to show, e.g. A or 7 (default: best class)")
    view.add_argument("--screenshot", type=Path, help="save the window as PNG and quit")
    add_model_options(view)
    add_stride_option(view)
    view.set_defaults(func=cmd_view)

    surg = sub.add_parser("surgery", help="make a classifier fully convolutional")
    surg.add_argument("--prototxt", type=Path, required=True, help="classifier prototxt")
    surg.add_argument("--weights", type=Path, required=True, help="classifier caffemodel")
    surg.add_argument("--out", type=Path, required=True, help="output folder")
    surg.add_argument("--fcn-prototxt", type=Path, help="your own fully convolutional prototxt "
                      "to transplant the weights into (the tutorial's workflow)")
    surg.add_argument("--check-count", type=positive_count, default=8,
                      help="random and glyph windows each for the equivalence check")
    surg.add_argument("--engine", default=None, help="engine for the check (default: opencv)")
    surg.add_argument("--json", action="store_true", help="print a JSON report")
    add_preprocess_options(surg)
    surg.set_defaults(func=cmd_surgery)

    fmap = sub.add_parser("map", help="compute the dense class maps of images")
    add_batch_options(fmap)
    fmap.add_argument("--scale", type=positive_scale, default=1.0,
                      help="input scale (default 1)")
    fmap.add_argument("--out", type=Path, required=True,
                      help="output folder (of several images: a folder per image in it)")
    add_model_options(fmap)
    add_stride_option(fmap)
    fmap.set_defaults(func=cmd_map)
    onnx = sub.add_parser("export", help="write the surgered net as an ONNX model")
    onnx.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx",
                      help="the ONNX file to write (height and width symbolic; the geometry "
                      "and labels in its metadata)")
    add_model_options(onnx)
    onnx.set_defaults(func=cmd_export)
    dataset_cli.register(sub)
    training_cli.register(sub)
    read = sub.add_parser("read", help="read the plate text with per-letter confidence")
    add_batch_options(read)
    read.add_argument("--scale", type=scale_or_auto, default="auto",
                      help="input scale, or 'auto' to search for the best fit (default)")
    read.add_argument("--out", type=Path, help="write the results to this file, not stdout")
    read.add_argument("--region", type=region_box, metavar="X,Y,W,H",
                      help="read only this region of the image, in its pixels")
    add_model_options(read)
    add_stride_option(read)
    read.set_defaults(func=cmd_read)
    parser.set_defaults(commands=set(sub.choices))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `main.py` and `netsurgery-viewer`: run a subcommand, `view` by default."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = parser.get_default("commands")
    if not commands & set(argv) and not {"-h", "--help", "--version"} & set(argv):
        debug = [a for a in argv if a == "--debug"]
        argv = debug + ["view"] + [a for a in argv if a != "--debug"]
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()              # here, where a closed pipe is caught below
        return status
    except ViewerError as err:
        if args.debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout left (`read ... | head -3`): stop quietly as Unix tools do, and
        # point stdout at /dev/null so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:  # a bug: one line unless --debug, never a silent exit
        if args.debug:
            traceback.print_exc()
        else:
            print(f"error: internal error: {type(err).__name__}: {err} (run with --debug for "
                  "the traceback)", file=sys.stderr)
        return 1
