"""`view`: the command line's model, image, channel, scale and stride, resolved into plain values
before the desktop viewer starts on them.

The viewer (`viewer.gui.app.run_viewer`) gets an `Opening`, never the arguments, so the GUI
knows nothing of the flags; every error in them is a one-line error before a window opens.
"""
from __future__ import annotations

import argparse
import signal
from pathlib import Path

from viewer.app import session
from viewer.cli.options import model_files, settings_from_args
from viewer.errors import ViewerError
from viewer.files import paths
from viewer.files.safe_read import stop_recording
from viewer.files.safe_write import check_output_path, is_stdout, probe_writable
from viewer.maps.featuremap import DenseClassifier


def initial_model(args: argparse.Namespace) -> session.LoadedModel:
    """The model named on the command line, or the bundled surgered LeNet.

    A classifier given on the command line is converted: asking for it is the user's
    request to see it as a dense map.
    """
    if (args.prototxt is None) != (args.weights is None):
        raise ViewerError("give --prototxt and --weights together")
    prototxt, weights = model_files(args)
    net = session.read_net(prototxt, weights)
    return session.build_model(net, prototxt, weights, getattr(args, "engine", None),
                               settings_from_args(args, net, prototxt))


def wants_fine(args: argparse.Namespace, dense: DenseClassifier) -> bool:
    """`view --stride N`: the viewer shows the net's own stride or, after it, stride 1."""
    stride = getattr(args, "stride", None)
    if stride is None or stride == dense.native_stride[0]:
        return False
    if stride != 1:
        raise ViewerError(f"the viewer shows stride {dense.native_stride[0]} (the net's) or 1, "
                          f"not {stride}; `map --stride {stride}` writes such a map")
    return True


def opening_from_args(args: argparse.Namespace) -> session.Opening:
    """Load everything the command line names (errors come before any window)."""
    image = session.read_image(args.image or paths.SAMPLE_PLATE)
    model = initial_model(args)
    if args.channel and args.channel not in model.dense.labels:
        raise ViewerError(f"unknown channel '{args.channel}'; choose one of "
                          f"{' '.join(model.dense.labels)}")
    return session.Opening(model, image, args.channel, args.scale, wants_fine(args, model.dense),
                           getattr(args, "why", None))


def run_view(args: argparse.Namespace) -> int:
    """Open the window; with --screenshot save it once the first map is drawn and quit."""
    from viewer.gui.app import run_viewer, use_a_display

    screenshot = getattr(args, "screenshot", None)
    if screenshot and not is_stdout(screenshot):  # say now, not after the window has drawn,
        check_output_path(screenshot, (args.image or paths.SAMPLE_PLATE,))  # that it cannot be
        probe_writable(Path(screenshot).parent)                             # written
    use_a_display(bool(screenshot))
    opening = opening_from_args(args)
    stop_recording()                  # what the window reads later is the user's browsing
    # In Qt's event loop a Python handler raising would only print a traceback in some slot:
    # the window ends as the system's default has it (a killed run's `.part` goes next time).
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    return run_viewer(opening, Path(screenshot) if screenshot else None)
