"""Running one per-image task over many images: the inputs a user names (files, folders,
globs), one model per process, results in input order, a progress bar on a terminal.

`read` and `map` are tasks here: a function `task(dense, image) -> (row, note)` that returns
one result row (a dict) and an optional note for stderr. A `ViewerError` on one image becomes
that image's error outcome and the batch goes on; anything else is a bug and stops it.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
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


# The model of this process, for a batch run here (--jobs 1): set once by `run_batch`.
_dense = None


def _run_one(task: Task, debug: bool, image: Path) -> Outcome:
    try:
        row, note = task(_dense, image)
        return Outcome(image, row, note=note)
    except ViewerError as err:
        return Outcome(image, error=str(err), trace=traceback.format_exc() if debug else "")


def capped_jobs(jobs: int) -> int:
    """`--jobs`, at most one per core: more processes only share the same cores, each with a
    model of its own (100 jobs on 2 cores used 3 GB and ran slower than 2). Said in a note."""
    cores = os.cpu_count() or 1
    if jobs > cores:
        progress.note(f"note: --jobs {jobs} is more than the {cores} cores of this machine: "
                      f"running {cores} jobs")
    return min(jobs, cores)


def run_batch(images: Sequence[Path], setup: Callable[[argparse.Namespace], object], task: Task,
              args: argparse.Namespace) -> Iterator[Outcome]:
    """Outcomes of `task` on every image, in input order.

    `setup(args)` makes the model (a DenseClassifier) here first, so a bad model fails before
    any image. With `--jobs 1` the images are run here, one after the other. Otherwise they go
    to a Dask cluster (`cli/cluster.py`): a local one of `--jobs` processes, or the one at
    `--cluster`, with the same outcomes.

    Our own multiprocessing pool is gone, though it measured faster on small batches: it
    started 0.7 s sooner (Dask's imports and cluster), so 4 crops took 2.2 s on it against
    2.9 s; on 30 photos the two were within 6%, in the noise of a loaded 2-core machine
    (`bench.batch_read` compares them). It is not kept for small batches because a SIGKILLed
    worker hung it, and a second runner would need a retry of its own.
    A progress bar goes to stderr when it is a terminal.
    """
    from functools import partial

    global _dense
    address = getattr(args, "cluster", None)
    jobs = min(capped_jobs(args.jobs) if not address else 1, len(images))
    if jobs > 1 or (address and images):
        from viewer.cli import cluster

        for fields in cluster.run(images, task, setup, args, jobs):
            yield Outcome(*fields)
        return
    _dense = setup(args)
    one = partial(_run_one, task, args.debug)
    with progress.bar(len(images), "images", "image") as bar:
        for outcome in map(one, images):
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
               text_line, out_file: Path | None = None,
               setup: Callable[[argparse.Namespace], object] = dense_from_args) -> int:
    """Run `task` on every image and write the results as they come, on stdout or
    atomically into `out_file` (with `--resume`: appended to it, a line at a time, after the
    images it already holds); exit 2 when some image failed. `setup(args)` makes the model."""
    if getattr(args, "resume", False):
        from viewer.cli import resume

        images, stream = resume.start(args, out_file, images)
        with stream:
            failed = write_outcomes(stream, run_batch(images, setup, task, args), args.format,
                                    columns, text_line)
        return EXIT_USER_ERROR if failed else 0
    outcomes = run_batch(images, setup, task, args)

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
