"""`read --resume --out FILE.jsonl`: go on with a batch that was stopped (Ctrl+C, a lost client,
a reboot) where it stopped, writing each image once.

A resumable run appends one whole line per image as it comes, in input order, instead of
writing the file at the end. On the next run the images whose rows are in the file are
skipped. A last line cut by a crash (no newline at its end, or not a JSON row) is not counted
as done: it is cut off and that image is read again.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TextIO

from viewer.errors import ViewerError
from viewer.files.safe_write import check_output_path


def start(args: argparse.Namespace, out_file: Path | None,
          images: list[Path]) -> tuple[list[Path], TextIO]:
    """The images still to do and the file to append their rows to, line-buffered."""
    if out_file is None or args.format != "jsonl":
        raise ViewerError("--resume goes on with a JSON-lines file: give --out FILE.jsonl and "
                          "--format jsonl (or --json)")
    check_output_path(out_file, images)
    done = done_images(out_file)
    todo = [image for image in images if str(image) not in done]
    try:
        stream = open(out_file, "a", encoding="utf-8", newline="", buffering=1)
    except OSError as err:
        raise ViewerError(f"cannot append to {out_file} ({err.strerror or err})") from None
    return todo, stream


def done_images(path: Path) -> set[str]:
    """The images that have a whole row in `path` (none when it does not exist yet); a cut
    last line is removed from the file, so the rows appended next start on a line of their
    own."""
    if not path.exists():
        return set()
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ViewerError(f"cannot read {path} to resume ({err.strerror or err})") from None
    done, whole = set(), 0
    for line in data.splitlines(keepends=True):
        row = _row(line)
        if row is None:
            break
        done.add(row)
        whole += len(line)
    if whole < len(data):
        if b"\n" in data[whole:].rstrip(b"\n"):
            raise ViewerError(f"{path} has a line that is not a result row of `read` before "
                              "its last one: resume only a file that `read --resume` wrote")
        os.truncate(path, whole)
    return done


def _row(line: bytes) -> str | None:
    """The image of one whole JSONL row, or None for a cut or foreign line."""
    if not line.endswith(b"\n"):
        return None
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row.get("image") if isinstance(row, dict) and isinstance(row.get("image"), str) \
        else None
