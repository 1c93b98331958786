"""Names of our own temporary files and folders, and the removal of those a killed run left.

A run killed with SIGKILL (or a power cut) cannot clean up: its `.NAME.PID-XXXXXXXX.part`
files and `.NAME.tmp-PID-XXXXXXXX` folders stay, hidden, up to hundreds of megabytes. Each
name carries the writer's process id, so the next run that writes NAME can tell a leftover
(its process is gone) from the work of a run still going on beside it, and remove only the
leftover.
"""
from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path

# A file name longer than this is cut in the temporary's name, which must fit NAME_MAX (255
# bytes) with its dot, process id, random part and suffix.
_NAME_BYTES = 200
# Temporaries of earlier versions carry no process id: leftovers once this old (seconds).
_OLD_UNNAMED = 3600


def prefix(name: str) -> str:
    """The start of every temporary name for the output `name`: `.NAME.` (NAME cut to 200
    bytes)."""
    return f".{os.fsdecode(os.fsencode(name)[:_NAME_BYTES])}."


def owned_prefix(name: str, tag: str = "") -> str:
    """`.NAME.` + tag + `PID-`: what `tempfile.mkstemp` completes with 8 random characters."""
    return f"{prefix(name)}{tag}{os.getpid()}-"


def temp_name(name: str, suffix: str, tag: str = "") -> str:
    """A fresh temporary name for the output `name`: `.NAME.` + tag + `PID-XXXXXXXX` + suffix."""
    return f"{prefix(name)}{tag}{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # it exists, but is another user's
        return True
    return True


# After `.NAME.`: an optional tag, the writer's process id and 8 random characters (earlier
# versions: the random characters only).
_OURS = re.compile(r"(?:tmp-|old-)?(?:(\d+)-)?[0-9a-z_]{8}")


def _stale(path: Path, pid: str | None) -> bool:
    """True when the temporary `path` was left by a run that is gone: its process `pid` no
    longer runs, or (no pid in its name) it is over an hour old."""
    if pid is not None:
        return int(pid) != os.getpid() and not _alive(int(pid))
    try:
        return time.time() - path.lstat().st_mtime > _OLD_UNNAMED
    except OSError:
        return False


def remove_stale(folder: str | os.PathLike, name: str, suffixes: tuple[str, ...]) -> list[Path]:
    """Remove the temporaries of the output `name` in `folder` that a killed run left: files
    or folders named `.NAME.` + [tmp-|old-] + [PID-] + 8 random characters + one of `suffixes`,
    whose process is gone. Returns what was removed; what cannot be listed or removed stays."""
    start = prefix(name)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(start):
            continue
        rest = entry.name[len(start):]
        suffix = next((s for s in suffixes if rest.endswith(s)), None)
        ours = None if suffix is None else _OURS.fullmatch(rest[:len(rest) - len(suffix)])
        if ours is None or not _stale(Path(entry.path), ours.group(1)):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed
