"""The command line's entry point: every command group's parser, `view` by default, and the
error handling that makes every failure one line.

Every failure a user can cause is a `ViewerError` and comes out as one `error: ...` line on
stderr with exit code 2; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import codecs
import errno
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Sequence

from viewer import __version__
from viewer.cli import dataset, explain, maps, model, read, train
from viewer.cli.options import (EXIT_USER_ERROR, add_model_options, add_stride_option,
                                positive_count, positive_scale)
from viewer.errors import ViewerError, one_line, too_long
from viewer.files.safe_read import forget_inputs


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
    view.add_argument("--why", type=positive_count, metavar="K", help="show why the K-th letter read "
                      "(from 1) is its class, as pressing its card does")
    add_model_options(view)
    add_stride_option(view)
    view.set_defaults(func=cmd_view)

    for group in (model, maps, dataset, train, read, explain):
        group.register(sub)
    parser.set_defaults(commands=set(sub.choices))
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stopped as Ctrl+C stops a command, so every `.part` file and
    temporary LMDB folder is removed on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# The process that runs the command: a forked worker (a --jobs pool) inherits the handler,
# and must die of the signal as before, not raise in the middle of waiting for work.
_owner = [0]


def _terminate(signum, frame) -> None:
    if os.getpid() != _owner[0]:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Terminated(signum)


def _stop_signals() -> dict:
    """Handle SIGTERM and SIGHUP as Ctrl+C (where the process may); the handlers they had."""
    old = {}
    _owner[0] = os.getpid()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        try:
            old[signum] = signal.signal(signum, _terminate)
        except (ValueError, OSError):       # not the main thread: leave them as they are
            pass
    return old


def _escape_undecodable(err: UnicodeError) -> tuple[str, int]:
    """A name's undecodable byte (a lone surrogate) printed as `\\xff`, as `shown` writes it;
    anything else the stream cannot encode as `\\uXXXX`."""
    bad = err.object[err.start:err.end]
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else
                   f"\\u{ord(c):04x}" for c in bad), err.end


codecs.register_error("viewer-escape", _escape_undecodable)


def _printable_streams() -> None:
    """stdout and stderr never fail on a file name that is not UTF-8 (`wrote a\\xff.onnx`)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="viewer-escape")
        except (AttributeError, ValueError, OSError):    # not a TextIOWrapper: leave it
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `main.py` and `netsurgery-viewer`: run a subcommand, `view` by default."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = parser.get_default("commands")
    if not commands & set(argv) and not {"-h", "--help", "--version"} & set(argv):
        debug = [a for a in argv if a == "--debug"]
        argv = debug + ["view"] + [a for a in argv if a != "--debug"]
    args = parser.parse_args(argv)
    forget_inputs()
    _printable_streams()
    handlers = _stop_signals()
    try:
        return _run(args)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; every failure becomes one `error: ...` line and an exit code."""
    try:
        status = args.func(args)
        sys.stdout.flush()              # here, where a closed pipe is caught below
        return status
    except ViewerError as err:
        if args.debug:
            traceback.print_exc()
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Terminated as stop:
        print(f"error: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout left (`read ... | head -3`): stop quietly as Unix tools do, and
        # point stdout at /dev/null so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:
        if err.errno != errno.ENAMETOOLONG:
            return _internal(args, err)
        print(f"error: {too_long(err.filename or '')}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:  # a bug: one line unless --debug, never a silent exit
        return _internal(args, err)


def _internal(args: argparse.Namespace, err: Exception) -> int:
    if args.debug:
        traceback.print_exc()
    else:
        print(f"error: internal error: {type(err).__name__}: {one_line(str(err))} (run "
              "with --debug for the traceback)", file=sys.stderr)
    return 1
