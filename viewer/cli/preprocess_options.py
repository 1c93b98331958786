"""The preprocessing flags every command that runs a net shares (`--mean`, `--channel-swap`...).

The flags are read as text and checked when the net is known (its channel count decides what is
valid), so a bad value is one `error: ...` line naming its flag, before anything is written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from viewer.files import paths
from viewer.net import netgraph
from viewer.caffe.model_io import CaffeNet
from viewer.maps.preprocess import (ModelSettings, net_sizes, parse_overrides, power_scale_note,
                               settings_for)


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
    source = prototxt or getattr(args, "prototxt", None) or paths.FCN_PROTOTXT
    settings = settings_for(source, *net_sizes(net), overrides)
    twice = power_scale_note(netgraph.deploy_layers(net.param)[:3], settings.transformer)
    for note in settings.notes + ((twice,) if twice else ()):
        print(f"warning: {note}", file=sys.stderr)
    return settings
