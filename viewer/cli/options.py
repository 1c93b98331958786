"""What the commands share: argument types, the model, stride, batch and preprocessing options,
and the small helpers that turn them into a model and checked outputs.

The preprocessing flags are read as text and checked when the net is known (its channel
count decides what is valid), so a bad value is one `error: ...` line naming its flag, before
anything is written.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from viewer.caffe.model_io import CaffeNet
from viewer.errors import ViewerError, one_line
from viewer.files import paths
from viewer.maps.preprocess import (ModelSettings, net_sizes, parse_overrides, power_scale_note,
                                    settings_for)
from viewer.net import netgraph
from viewer.net.weights import load_net

EXIT_USER_ERROR = 2
EXIT_CHECK_FAILED = 3


def whole_number(minimum: int, rule: str) -> Callable[[str], int]:
    """An argparse type for a whole number of at least `minimum`; `rule` starts the message."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{rule}, got {value}")
        return value
    return parse


# Counts (--jobs, --stride, --check-count): at least 1.
positive_count = whole_number(1, "must be at least 1")
# --seed: a whole number numpy accepts as a seed.
seed_value = whole_number(0, "a seed is 0 or more")


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


def add_preprocess_options(parser: argparse.ArgumentParser) -> None:
    """Caffe's preprocessing (as pycaffe's Transformer) and class names, for `parser`."""
    group = parser.add_argument_group(
        "preprocessing (default: Caffe's classify.py: BGR, raw scale 255, no mean; gray for "
        "1-channel nets; or what `surgery --out` stored beside the net)")
    group.add_argument("--mean", metavar="FILE|V[,V,V]",
                       help="subtract a mean: values in the net's channel order (104,117,123) "
                       "or a mean.binaryproto/.npy mean image, reduced to per-channel means")
    group.add_argument("--channel-swap", metavar="I,J,K",
                       help="net channel k reads RGB channel I/J/K (default 2,1,0: BGR; "
                       "'none' keeps RGB)")
    group.add_argument("--raw-scale", metavar="S",
                       help="pixels run 0-S before the mean is subtracted (default 255)")
    group.add_argument("--input-scale", metavar="S",
                       help="multiply after the mean, e.g. 1/256 for Caffe's MNIST LeNet "
                       "(default 1)")
    group.add_argument("--train-prototxt", type=Path, metavar="FILE",
                       help="take scale, mean_value and mean_file from this train_val net's "
                       "transform_param (the flags above still win)")
    group.add_argument("--labels", type=Path, metavar="FILE",
                       help="class names, one per line (default: labels.txt or "
                       "synset_words.txt beside the model)")


def settings_from_args(args: argparse.Namespace, net: CaffeNet,
                       prototxt: Path | None = None) -> ModelSettings:
    """The settings for `net`: the flags over its sidecar over Caffe's defaults.

    `prototxt` is where the net came from (default: --prototxt, else the bundled model).
    A labels file of the wrong length (the classes are then numbered) and an input scale on
    top of the net's own Power layer are `warning:` lines on stderr.
    """
    overrides = parse_overrides(args.mean, args.channel_swap, args.raw_scale, args.input_scale,
                                args.labels, args.train_prototxt)
    source = prototxt or model_files(args)[0]
    settings = settings_for(source, *net_sizes(net), overrides)
    twice = power_scale_note(netgraph.deploy_layers(net.param)[:3], settings.transformer)
    for note in settings.notes + ((twice,) if twice else ()):
        print(f"warning: {one_line(note)}", file=sys.stderr)
    return settings


def add_model_options(parser: argparse.ArgumentParser, strongest: bool = False) -> None:
    """--model or --prototxt/--weights (default: a bundled surgered plate net: the strongest
    for `strongest`, as `read` wants, else the tutorial's LeNet) and --engine."""
    from viewer.engines import DEFAULT_ENGINE, engine_names

    default = "the strongest bundled" if strongest else f"'{paths.VIEWER_MODEL}'"
    parser.add_argument("--model", choices=tuple(paths.PLATE_MODELS), default=None,
                        help=f"a bundled plate net: bnnet (BatchNorm, stronger) or lenet (the "
                        f"tutorial's); default {default}")
    parser.set_defaults(strongest_model=strongest)
    parser.add_argument("--prototxt", type=Path, help="net structure (classifier or fully "
                        "convolutional; default: a bundled surgered net, see --model)")
    parser.add_argument("--weights", type=Path, help="the .caffemodel that goes with --prototxt")
    parser.add_argument("--engine", default=DEFAULT_ENGINE, choices=engine_names(),
                        help=f"inference engine (default: {DEFAULT_ENGINE})")
    add_preprocess_options(parser)


def add_stride_option(parser: argparse.ArgumentParser) -> None:
    """--stride N: a map cell every N pixels, N dividing the net's own stride (a fine map)."""
    parser.add_argument("--stride", type=positive_count, default=None,
                        help="a map cell every N pixels of the scaled image; N divides the "
                        "net's stride (LeNet: 1, 2 or 4; default: the net's stride)")


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    """The images (files, folders, globs), --format and --jobs of `read` and `map`."""
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files, folders of images, or quoted globs ('crops/*.png')")
    parser.add_argument("--format", choices=("text", "jsonl", "csv"), default="text",
                        help="results as text lines, JSON lines or CSV (default: text)")
    parser.add_argument("--json", action="store_const", dest="format", const="jsonl",
                        help="same as --format jsonl")
    parser.add_argument("--jobs", type=positive_count, default=1,
                        help="worker processes on this machine, at most one per core (a "
                        "local Dask cluster; default 1: no cluster)")
    parser.add_argument("--cluster", metavar="ADDRESS", type=cluster_address,
                        help="run on the Dask scheduler at this address (tcp://HOST:8786): "
                        "docs/cluster.md")
    parser.add_argument("--paths-on-workers", action="store_true",
                        help="with --cluster: the workers see the same files, so only the "
                        "image paths travel, not their bytes")


def cluster_address(text: str) -> str:
    """argparse type for --cluster: a scheduler address, `tcp://HOST:PORT` (or `HOST:PORT`)."""
    address = text if "://" in text else f"tcp://{text}"
    scheme, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme not in ("tcp", "tls", "ws", "wss") or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected a scheduler address such as "
                                         f"tcp://HOST:8786, got '{text}'")
    return address


def chosen_plate_model(args: argparse.Namespace) -> paths.PlateModel:
    """The bundled model --model names, or the command's default one."""
    name = getattr(args, "model", None)
    if name is not None:
        model = paths.PLATE_MODELS[name]
        if not model.bundled():
            raise ViewerError(f"the {name} model is not installed: {model.fcn_prototxt} is "
                              "missing (make model trains it)")
        return model
    if getattr(args, "strongest_model", False):
        return paths.strongest_plate_model()
    return paths.PLATE_MODELS[paths.VIEWER_MODEL]


def model_files(args: argparse.Namespace) -> tuple[Path, Path]:
    """(prototxt, weights) of the net a command runs: --prototxt/--weights, else the bundled
    surgered twin of the chosen plate model."""
    if getattr(args, "prototxt", None) is not None:
        if getattr(args, "model", None) is not None:
            raise ViewerError("give --model or --prototxt/--weights, not both")
        return Path(args.prototxt), Path(args.weights) if args.weights else None
    model = chosen_plate_model(args)
    return model.fcn_prototxt, model.fcn_weights


def load_model_args(args: argparse.Namespace):
    """The net named by --prototxt/--weights, or the bundled fully convolutional one."""
    if (args.prototxt is None) != (args.weights is None):
        raise ViewerError("give --prototxt and --weights together")
    net = load_net(*model_files(args))
    print_warnings(net.warnings)           # a user's prototxt's ignored fields
    return net


def dense_from_args(args: argparse.Namespace):
    """The DenseClassifier of the model options with its preprocessing: what `read` and `map`
    run, once per process."""
    from viewer.maps.featuremap import DenseClassifier

    net = load_model_args(args)
    return DenseClassifier(net, args.engine, getattr(args, "stride", None),
                           settings_from_args(args, net))


def print_warnings(warnings: Sequence[str]) -> None:
    """The prototxt's ignored fields (a typo such as `weight_filer`), one `warning:` line each
    on stderr: the net runs, but not as its author meant."""
    for warning in warnings:
        print(f"warning: {one_line(warning)}", file=sys.stderr)


def command_inputs(args: argparse.Namespace) -> tuple[Path, ...]:
    """The files a command's flags name for reading (the model, or the bundled one, labels,
    mean, train prototxt): outputs may not replace them. Files found beside them (labels,
    sidecar) are read through `safe_read`, which `safe_write` refuses to replace as well."""
    named = [getattr(args, flag, None) for flag in ("prototxt", "weights", "fcn_prototxt",
                                                    "labels", "train_prototxt", "mean")]
    if hasattr(args, "prototxt") and getattr(args, "prototxt", None) is None:
        named += [*model_files(args), paths.LABELS]
    return tuple(Path(p) for p in named if p)


def prepare_outputs(folder: Path, names: Sequence[str], inputs: tuple) -> list[Path]:
    """Create --out and check every file to be written there, before any long work."""
    from viewer.files.safe_write import check_output_path, prepare_output_folder

    prepare_output_folder(folder)
    return [check_output_path(folder / name, inputs) for name in names]


def print_json(data: dict) -> None:
    print(json.dumps(data, indent=2))
