"""Atomic output writing that never touches the user's input files.

Every file the project writes goes through here: a temporary file in the target folder, then
`os.replace`, so an interrupted write leaves the old file or the new one, never half of one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from viewer.errors import ViewerError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an output path that is one of the inputs or sits in a folder we cannot write."""
    out = Path(path)
    for src in inputs:
        if src and (_same_file(out, Path(src)) or out.resolve() == Path(src).resolve()):
            raise ViewerError(f"refusing to overwrite the input file {out}: choose another output")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ViewerError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ViewerError(f"output folder {folder} is not writable")
    return out


def write_bytes_atomic(path: str | os.PathLike, data: bytes,
                       inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Write `data` to `path` through a temporary file and a rename."""
    out = check_output_path(path, inputs)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent or ".")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; outputs get normal permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def write_text_atomic(path: str | os.PathLike, text: str,
                      inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Write UTF-8 text atomically; see `write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"), inputs)
