"""Opening a user's input file: regular files only, and never more bytes than a limit.

A FIFO given as the image blocks a plain `open()` forever, and `/dev/zero` read whole fills
memory until the machine gives up. Both are refused before a byte is read: the file is opened
without blocking and checked with `fstat` on that very descriptor, so a file swapped after a
check cannot slip through.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO


# Every regular file opened for reading in this process since `forget_inputs`: its (device,
# inode) and the name it was opened by. An output must never replace one of them (the model a
# command reads, the labels found beside it, a --mean file), whoever found or named it.
_inputs: dict[tuple[int, int], str] = {}
_recording = [True]


def inputs_read() -> dict[tuple[int, int], str]:
    """The files read so far, by (device, inode): what `safe_write` refuses to replace."""
    return dict(_inputs)


def forget_inputs() -> None:
    """Start a new command: the files an earlier one read are no longer its inputs."""
    _inputs.clear()
    _recording[0] = True


def stop_recording() -> None:
    """Keep the files read so far as inputs, and add no more: the viewer, once open, reads
    whatever the user browses, and its exports name their own inputs (the image and model
    shown), so only the files it was started with stay protected beyond those."""
    _recording[0] = False


class NotRegularFile(OSError):
    """The path names a FIFO, a device or a socket: nothing a viewer should read."""


class FileTooLarge(OSError):
    """The file is larger than what its kind of input can sensibly be."""


def kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open `path` for reading if it is a regular file (symlinks followed).

    Raises FileNotFoundError, PermissionError, IsADirectoryError or NotRegularFile (all
    OSErrors, whose `strerror` says what the path is).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "it is a folder", str(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, f"it is {kind(mode)}, not a regular file",
                                 str(path))
        os.set_blocking(fd, True)
        if _recording[0]:
            _inputs[(info.st_dev, info.st_ino)] = os.path.abspath(path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file `path`, refused (FileTooLarge) beyond `limit` bytes.

    Reads the size `fstat` gives, no more: `read(limit)` would allocate the whole limit.
    """
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise FileTooLarge(errno.EFBIG, f"it is over {max(1, limit // 2 ** 20)} MB, larger "
                               f"than any {what} this viewer reads", str(path))
        return fh.read(size)
