"""Quoted globs of `read` and `map` (`'crops/**/*.png'`), expanded as a shell would, safely.

`glob.glob(recursive=True)` follows links to folders under `**`: two `x -> .` links make it
endless (and its memory grows), one makes a plate count 41 times. Here `**` walks the folders
without following such links, and a file reached by two names counts once.
"""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Sequence

GLOB_CHARS = set("*?[")


def matching(pattern: str) -> list[Path]:
    """The files `pattern` matches, sorted, each once. `**` is any number of folders, walked
    without following links to folders: a link to `.` would make the walk endless."""
    if "**" not in pattern:
        matches = [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).is_file()]
    else:
        parts = Path(pattern).parts
        first = next(k for k, part in enumerate(parts) if GLOB_CHARS & set(part))
        base = Path(*parts[:first]) if first else Path(".")
        wanted = re.compile(pattern_regex(parts[first:]))
        matches = []
        for folder, subfolders, files in os.walk(base, followlinks=False):
            subfolders.sort()
            for name in sorted(files):
                path = Path(folder, name)
                if wanted.fullmatch(path.relative_to(base).as_posix()) and path.is_file():
                    matches.append(path)
        matches.sort()
    return _each_file_once(matches)


def _each_file_once(paths: list[Path]) -> list[Path]:
    """`paths` (sorted) with each file once: a file linked under two names is one image, named
    by its real path when one of the names is (a link's otherwise)."""
    chosen: dict[object, Path] = {}
    for path in sorted(paths, key=lambda p: (p.is_symlink(), p)):
        try:
            info = path.stat()
            key: object = (info.st_dev, info.st_ino)
        except OSError:                       # gone since: its task says so
            key = path
        chosen.setdefault(key, path)
    return sorted(chosen.values())


def pattern_regex(parts: Sequence[str]) -> str:
    """A regular expression for the relative path of `parts` as glob reads them: `*` and `?`
    within one name, `[...]` a set, `**` any folders; names starting with a dot only when
    the pattern's name does."""
    regex = ""
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        if part == "**":
            regex += r"(?!\.)[^/]*(?:/(?!\.)[^/]*)*" if last else r"(?:(?!\.)[^/]+/)*"
            continue
        regex += "" if part.startswith(".") else r"(?!\.)"
        regex += _name_regex(part)
        regex += "" if last else "/"
    return regex


def _name_regex(part: str) -> str:
    """One name of a glob pattern as a regular expression that stays within the name."""
    regex, i = "", 0
    while i < len(part):
        c = part[i]
        end = part.find("]", i + 2) if c == "[" else -1
        if c == "*":
            regex += "[^/]*"
        elif c == "?":
            regex += "[^/]"
        elif end > 0:
            inside = part[i + 1:end]
            inside = "^" + inside[1:] if inside.startswith("!") else inside
            regex += "[" + inside.replace("\\", "\\\\") + "]"
            i = end
        else:
            regex += re.escape(c)
        i += 1
    return regex
