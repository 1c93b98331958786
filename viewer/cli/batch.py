"""Running one per-image task over many images: the inputs a user names (files, folders,
globs), one model per process, results in input order, a progress bar on a terminal.

`read` and `map` are tasks here: a function `task(dense, image) -> (row, note)` that returns
one result row (a dict) and an optional note for stderr. A `ViewerError` on one image becomes
that image's error outcome and the batch goes on; anything else is a bug and stops it.
"""
from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import multiprocessing
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, TextIO

from viewer import progress
from viewer.cli import globs
from viewer.cli.options import EXIT_USER_ERROR, command_inputs, dense_from_args
from viewer.errors import ViewerError, one_line, shown
from viewer.files.safe_write import write_atomic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm",
                  ".ppm", ".pbm", ".pnm"}
GLOB_CHARS = globs.GLOB_CHARS

Task = Callable[[object, Path], "tuple[dict, str]"]


@dataclass
class Outcome:
    """What one image gave: its row, or the one-line error (and, under --debug, the trace)."""

    image: Path
    row: dict | None = None
    error: str = ""
    note: str = ""
    trace: str = ""

    def error_line(self) -> str:
        """`error: ...` naming the image unless the message already does, as one printable
        line (a name's newline or undecodable byte escaped)."""
        name = str(self.image)
        line = self.error if name in self.error else f"{name}: {self.error}"
        return f"error: {one_line(line)}"


def expand_inputs(items: Sequence[str | os.PathLike]) -> list[Path]:
    """Images named by files, folders (their images, sorted) and globs (quoted `'*.png'`).

    A folder with no image, or a glob matching nothing, stays as it is, so its task fails
    with the loader's own message instead of the batch silently shrinking.
    """
    images: list[Path] = []
    for item in map(str, items):
        path = Path(item)
        if _is_folder(path):
            found = sorted(p for p in path.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif GLOB_CHARS & set(item) and not os.path.lexists(path):
            found = globs.matching(item)
        else:
            found = []
        images.extend(found or [path])
    return images


def _is_folder(path: Path) -> bool:
    """`path.is_dir()`, False for a path the system cannot even look up (too long): its task
    then says so."""
    try:
        return path.is_dir()
    except OSError:
        return False


# The model of this process: set once by `run_batch` (inherited by forked workers) or by the
# worker initializer where processes are spawned.
_dense = None


def _run_one(task: Task, debug: bool, image: Path) -> Outcome:
    try:
        row, note = task(_dense, image)
        return Outcome(image, row, note=note)
    except ViewerError as err:
        return Outcome(image, error=str(err), trace=traceback.format_exc() if debug else "")


def _init_worker(setup: Callable[[], object], threads: int) -> None:
    """A worker leaves Ctrl+C to the parent (which stops the pool) and uses `threads`."""
    global _dense
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _dense is None:
        _dense = setup()
    _dense.engine.limit_threads(threads)


def run_batch(images: Sequence[Path], setup: Callable[[], object], task: Task,
              jobs: int = 1, debug: bool = False) -> Iterator[Outcome]:
    """Outcomes of `task` on every image, in input order.

    `setup()` makes the model (a DenseClassifier) once here first, so a bad model fails before
    any image; with `jobs` > 1 the images are spread over that many processes, each running
    its engine on its share of the cores. A progress bar goes to stderr when it is a terminal.
    """
    from functools import partial

    global _dense
    _dense = setup()
    jobs = max(1, min(jobs, len(images)))
    one = partial(_run_one, task, debug)
    with progress.bar(len(images), "images", "image") as bar:
        if jobs == 1:
            outcomes = map(one, images)
            yield from _advance(outcomes, bar)
            return
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with multiprocessing.Pool(jobs, _init_worker, (setup, threads)) as pool:
            yield from _advance(pool.imap(one, images), bar)


def _advance(outcomes: Iterator[Outcome], bar) -> Iterator[Outcome]:
    for outcome in outcomes:
        bar.update()
        yield outcome


def _cell(value: object) -> object:
    """A CSV cell: numbers and text as they are, a list of numbers space-separated, anything
    nested as compact JSON."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str)) for v in value):
        return " ".join(map(str, value))
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def printable(value: object) -> object:
    """`value` (a row) with every text escaped as `shown` does: a file name's undecodable
    byte 0xff is written `\\xff` (it cannot be encoded to UTF-8), a newline `\\x0a`, the same
    in text, JSONL and CSV."""
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, dict):
        return {k: printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    return value


def write_outcomes(stream: TextIO, outcomes: Iterator[Outcome], fmt: str,
                   columns: Sequence[str], text_line: Callable[[dict], str]) -> int:
    """Write each outcome as it comes: a JSON line, a CSV row (`columns`) or `text_line(row)`;
    errors and notes go to stderr, and an error is a row of its own in JSONL and CSV.
    Returns how many images failed."""
    failed = 0
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(stream, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
    for outcome in outcomes:
        if outcome.note:
            progress.note(f"note: {one_line(outcome.note)}")
        row = outcome.row
        if outcome.error:
            failed += 1
            if outcome.trace:
                progress.note(outcome.trace.rstrip())
            progress.note(outcome.error_line())
            row = {"image": str(outcome.image), "error": one_line(outcome.error)}
        row = printable(row)
        if fmt == "jsonl":
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif fmt == "csv":
            writer.writerow({k: _cell(v) for k, v in row.items()})
        elif not outcome.error:
            stream.write(text_line(row) + "\n")
    return failed


def run_images(args: argparse.Namespace, images: list[Path], task, columns: Sequence[str],
               text_line, out_file: Path | None = None, setup: Callable[[argparse.Namespace], object] = dense_from_args) -> int:
    """Run `task` on every image and write the results as they come, on stdout or
    atomically into `out_file`; exit 2 when some image failed. `setup(args)` makes the model."""
    outcomes = run_batch(images, functools.partial(setup, args), task,
                               args.jobs, args.debug)

    def write(stream) -> int:
        return write_outcomes(stream, outcomes, args.format, columns, text_line)

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
        write_atomic(out_file, write_file, (*images, *command_inputs(args)))
    return EXIT_USER_ERROR if failed else 0
