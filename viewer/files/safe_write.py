"""Atomic output writing that never touches the user's input files.

Every file the project writes goes through here: a temporary file in the target folder, then
`os.replace`, so an interrupted write leaves the old file or the new one, never half of one.
Whether a folder is writable is found out by writing (a probe file), not by `os.access`, which
says yes to root even on a read-only file system or an immutable folder.
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Sequence

from viewer.errors import ViewerError, one_line
from viewer.files import temporaries
from viewer.files.safe_read import inputs_read, kind


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _reason(err: OSError) -> str:
    return (err.strerror or str(err)).lower()


def probe_writable(folder: str | os.PathLike) -> None:
    """Create and remove a file in `folder`, or raise a ViewerError saying why it cannot be."""
    folder = Path(folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
    except OSError as err:
        raise ViewerError(f"output folder {folder} is not writable ({_reason(err)}): "
                          "choose another folder") from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def prepare_output_folder(path: str | os.PathLike) -> Path:
    """Create the output folder if needed and make sure files can be written in it."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ViewerError(f"output folder {folder} is an existing file: choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ViewerError(f"cannot create the output folder {folder} ({_reason(err)}): "
                          "choose another folder") from None
    probe_writable(folder)
    return folder


# Names that mean the standard output, as Unix tools read them.
STDOUT_NAMES = ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")
# The longest file name most file systems take (NAME_MAX), in bytes.
NAME_MAX = 255


def is_stdout(path: str | os.PathLike) -> bool:
    """True for `-` or `/dev/stdout` given as an output: write to the standard output."""
    return os.fspath(path) in STDOUT_NAMES


def _refuse_target(out: Path, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse an output that would replace what it must not: a file this command reads (given
    in `inputs`, or opened through `safe_read` so far), a device, FIFO or socket (replacing it
    breaks the system or whoever reads it), or a read-only file."""
    for src in inputs:
        if src and (_same_file(out, Path(src)) or out.resolve() == Path(src).resolve()):
            raise ViewerError(f"refusing to overwrite the input file {out}: choose another output")
        if src and Path(src).is_dir() and Path(src).resolve() in out.resolve().parents:
            raise ViewerError(f"refusing to write {out} inside the input folder {src}: "
                              "choose an output outside it")
    try:
        info = os.stat(out)
    except OSError:
        return                               # a new file (or a dangling link, replaced)
    read = inputs_read().get((info.st_dev, info.st_ino))
    if read is not None and _same_file(Path(read), out):    # not a reused inode number
        also = "" if os.path.abspath(read) == os.path.abspath(out) else f" (as {read})"
        raise ViewerError(f"refusing to overwrite {out}: this command reads it{also}: "
                          "choose another output")
    if stat.S_ISDIR(info.st_mode):
        raise ViewerError(f"cannot write {out}: a folder of that name exists")
    if not stat.S_ISREG(info.st_mode):
        raise ViewerError(f"refusing to write {out}: it is {kind(info.st_mode)}, not a regular "
                          "file (use - for the standard output): choose a file name")
    if not info.st_mode & 0o222 or not os.access(out, os.W_OK):
        raise ViewerError(f"refusing to replace {out}: it is read-only (mode "
                          f"{stat.S_IMODE(info.st_mode):04o}): choose another output, or make "
                          "it writable first")


def check_output_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an output path that is one of the inputs, a folder, a device, FIFO or socket, a
    read-only file, a name too long, or in a folder we cannot write. `-` and `/dev/stdout`
    pass: they mean the standard output."""
    out = Path(path)
    if is_stdout(path):
        return Path(os.fspath(path))
    if len(os.fsencode(out.name)) > NAME_MAX:
        raise ViewerError(f"cannot write {one_line(out.name, 120)}: the name is "
                          f"{len(os.fsencode(out.name))} bytes, longer than the {NAME_MAX} a file "
                          "name may have: choose a shorter name")
    _refuse_target(out, inputs)
    folder = out.parent                      # Path("out.png").parent is Path(".")
    if not folder.is_dir():
        raise ViewerError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ViewerError(f"output folder {folder} is not writable")
    return out


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some file systems cannot sync a folder, which is harmless."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


Writer = Callable[[BinaryIO], object]


def _filled_temp(out: Path, write: Writer) -> str:
    """A temporary file beside `out`, filled by `write(file)` and synced to disk."""
    temporaries.remove_stale(out.parent, out.name, (".part", ".old"))
    try:
        fd, tmp = tempfile.mkstemp(prefix=temporaries.owned_prefix(out.name), suffix=".part",
                                   dir=out.parent)
    except OSError as err:
        raise ViewerError(f"output folder {out.parent} is not writable ({_reason(err)}): "
                          "choose another folder") from None
    umask = os.umask(0)
    os.umask(umask)
    try:
        mode = stat.S_IMODE(os.stat(out).st_mode)     # a file replaced keeps its mode
    except OSError:
        mode = 0o666 & ~umask                          # mkstemp makes 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _kept(out: Path) -> Path | None:
    """A hard link to the file that `out` is about to replace, to put it back if a later file
    of the same group fails (None when there is none, or links are not possible here)."""
    if not os.path.lexists(out):
        return None
    backup = out.parent / temporaries.temp_name(out.name, ".old")
    try:
        os.link(out, backup, follow_symlinks=False)
    except OSError:
        return None
    return backup


def _put_back(replaced: list[Path], kept: dict[Path, Path | None]) -> None:
    """Undo the renames of a group that failed half-way."""
    for out in reversed(replaced):
        try:
            if kept.get(out):
                os.replace(kept[out], out)
            else:
                out.unlink(missing_ok=True)
        except OSError:
            pass


def write_together(files: Sequence[tuple[str | os.PathLike, Writer]],
                   inputs: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Write files that belong together (a prototxt and its caffemodel) all, or none.

    Every file is first written in full to a temporary file beside its target; only then are
    they renamed into place. If anything fails (a full disk, an interrupt), the temporary
    files are removed and any file already renamed is put back as it was.
    """
    inputs = tuple(inputs)
    outs = [check_output_path(path, inputs) for path, _ in files]
    if any(is_stdout(o) for o in outs):
        if len(outs) > 1:
            raise ViewerError(f"{', '.join(map(str, outs))} belong together: write them to "
                              "files, not the standard output")
        return [_to_stdout(outs[0], files[0][1])]
    temps: list[str] = []
    kept: dict[Path, Path | None] = {}
    replaced: list[Path] = []
    out = outs[0]
    try:
        for out, (_, write) in zip(outs, files):
            temps.append(_filled_temp(out, write))
        if len(outs) > 1:
            kept = {o: _kept(o) for o in outs}
        for out, tmp in zip(outs, temps):
            _refuse_target(out, inputs)      # what the writers read meanwhile counts too
            os.replace(tmp, out)
            replaced.append(out)
    except BaseException as err:
        _put_back(replaced, kept)
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
        if not isinstance(err, OSError):
            raise
        group = "" if len(outs) == 1 else \
            f" so none of {', '.join(o.name for o in outs)} was written, and"
        raise ViewerError(f"cannot write {out} ({_reason(err)});{group} any earlier "
                          f"file{'s' if group else ''} there {'are' if group else 'is'} "
                          "unchanged") from None
    finally:
        for backup in kept.values():
            if backup:
                backup.unlink(missing_ok=True)
    for folder in dict.fromkeys(o.parent for o in outs):
        _fsync_folder(folder)
    return outs


def _to_stdout(out: Path, write: Writer) -> Path:
    """Stream to the standard output (`-`): nothing to replace, and nothing half-written to
    remove if the reader leaves."""
    sys.stdout.flush()
    stream = getattr(sys.stdout, "buffer", sys.stdout)
    write(stream)
    stream.flush()
    return out


def write_atomic(path: str | os.PathLike, write: Writer,
                 inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Fill `path` by `write(file)` through a temporary file and a rename.

    The writer streams to the file, so a large output (the npz of a 12 MP photo's maps, over
    a gigabyte) is never held in memory as bytes first.
    """
    return write_together([(path, write)], inputs)[0]


def write_bytes_atomic(path: str | os.PathLike, data: bytes,
                       inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Write `data` to `path` atomically; see `write_atomic`."""
    return write_atomic(path, lambda fh: fh.write(data), inputs)


def write_text_atomic(path: str | os.PathLike, text: str,
                      inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Write UTF-8 text atomically; see `write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"), inputs)
