"""The DIN-like condensed sans fonts that synthetic plates are drawn with, found by file path.

The default faces come from Debian font packages (`scripts/system-deps.sh` installs them), so a
fresh machine gets the same set by installing packages; they are looked up by file name under
the usual font folders. The shipped model is trained on these alone (`make model`).

DINish (OFL-1.1, `resources/fonts/` with its `OFL.txt`) is close to DIN 1451, the face of
German, Austrian, Czech and Slovak plates, in its Mittelschrift, Engschrift (Condensed) and an
Expanded width. It is bundled, so it is there on every machine, and drawn only when asked
(`FACE_SETS`: `dataset make --faces`), so the default data stays what it was.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from viewer.errors import DatasetError
from viewer.files.paths import RESOURCES


@dataclass(frozen=True)
class FontFace:
    """One font file and the Debian package that installs it."""

    name: str
    path: Path
    package: str


# (package, file name, face name). Close to the plate faces (DIN 1451 and its relatives) first.
# Every face is later scaled to a common width-to-height ratio, so narrow and wide ones both fit.
FONT_FILES: tuple[tuple[str, str, str], ...] = (
    ("fonts-opendin", "OSP-DIN.ttf", "Open DIN"),
    ("fonts-roboto-unhinted", "RobotoCondensed-Regular.ttf", "Roboto Condensed"),
    ("fonts-roboto-unhinted", "RobotoCondensed-Medium.ttf", "Roboto Condensed Medium"),
    ("fonts-roboto-unhinted", "RobotoCondensed-Bold.ttf", "Roboto Condensed Bold"),
    ("fonts-bebas-neue", "BebasNeue-Regular.otf", "Bebas Neue"),
    ("fonts-bebas-neue", "BebasNeue-Bold.otf", "Bebas Neue Bold"),
    ("fonts-b612", "B612-Regular.otf", "B612"),
    ("fonts-b612", "B612-Bold.otf", "B612 Bold"),
    ("fonts-liberation", "LiberationSansNarrow-Regular.ttf", "Liberation Sans Narrow"),
    ("fonts-liberation", "LiberationSansNarrow-Bold.ttf", "Liberation Sans Narrow Bold"),
    ("fonts-dejavu-extra", "DejaVuSansCondensed.ttf", "DejaVu Sans Condensed"),
    ("fonts-dejavu-extra", "DejaVuSansCondensed-Bold.ttf", "DejaVu Sans Condensed Bold"),
)

# The bundled DINish faces: (file name, face name).
BUNDLED_FONTS = RESOURCES / "fonts"
DINISH_FILES: tuple[tuple[str, str], ...] = (
    ("DINish-Regular.ttf", "DINish"),
    ("DINish-Medium.ttf", "DINish Medium"),
    ("DINish-SemiBold.ttf", "DINish SemiBold"),
    ("DINish-Bold.ttf", "DINish Bold"),
    ("DINishCondensed-Regular.ttf", "DINish Condensed"),
    ("DINishCondensed-Medium.ttf", "DINish Condensed Medium"),
    ("DINishCondensed-Bold.ttf", "DINish Condensed Bold"),
    ("DINishExpanded-Regular.ttf", "DINish Expanded"),
    ("DINishExpanded-Bold.ttf", "DINish Expanded Bold"),
)
# Three DINish faces never go into training, so that `bench.read_unseen` draws its plates in
# faces neither bundled model saw: a weight between two trained ones, and a width's bold.
DINISH_HELD_OUT: tuple[str, ...] = ("DINish Medium", "DINish Condensed Medium",
                                    "DINish Expanded Bold")
DEFAULT_FACES = "debian"
FACE_SETS: tuple[str, ...] = ("debian", "dinish", "debian+dinish", "dinish-held-out")

FONT_PACKAGES: tuple[str, ...] = tuple(dict.fromkeys(pkg for pkg, _, _ in FONT_FILES))

DEFAULT_FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
    Path.home() / ".fonts",
)


def _index_font_files(dirs: tuple[Path, ...]) -> dict[str, Path]:
    """Map each font file name under `dirs` to its first path (walks the folders once)."""
    found: dict[str, Path] = {}
    for folder in dirs:
        if not folder.is_dir():
            continue
        for root, _dirs, files in os.walk(folder):
            for name in files:
                found.setdefault(name, Path(root) / name)
    return found


@lru_cache(maxsize=8)
def find_fonts(dirs: tuple[Path, ...] = DEFAULT_FONT_DIRS) -> tuple[FontFace, ...]:
    """Return the installed plate fonts, best first.

    Raises DatasetError naming the apt packages to install when none of them is found.
    """
    index = _index_font_files(tuple(Path(d) for d in dirs))
    faces = tuple(FontFace(name, index[file], pkg)
                  for pkg, file, name in FONT_FILES if file in index)
    if not faces:
        searched = ", ".join(str(d) for d in dirs)
        raise DatasetError(
            f"no plate font found under {searched}: install them with "
            f"`apt-get install {' '.join(FONT_PACKAGES)}` (or run scripts/system-deps.sh)")
    return faces


def missing_font_packages(dirs: tuple[Path, ...] = DEFAULT_FONT_DIRS) -> list[str]:
    """The font packages none of whose files is installed (for a hint in logs and reports)."""
    index = _index_font_files(tuple(Path(d) for d in dirs))
    have = {pkg for pkg, file, _ in FONT_FILES if file in index}
    return [pkg for pkg in FONT_PACKAGES if pkg not in have]


def dinish_fonts() -> tuple[FontFace, ...]:
    """The bundled DINish faces; DatasetError when a file is missing from the install."""
    faces = tuple(FontFace(name, BUNDLED_FONTS / file, "bundled (OFL-1.1)")
                  for file, name in DINISH_FILES)
    missing = [str(f.path) for f in faces if not f.path.is_file()]
    if missing:
        raise DatasetError(f"the bundled font {missing[0]} is missing: reinstall the viewer")
    return faces


def faces_of(name: str = DEFAULT_FACES) -> tuple[FontFace, ...]:
    """The faces of a set in `FACE_SETS`: the Debian ones, all nine bundled DINish ones, the
    Debian ones with the DINish ones but the held-out three (BNNet's training data; Debian's
    first, so that a style's face index means the same face in either set), or those three."""
    if name not in FACE_SETS:
        raise DatasetError(f"unknown face set {name!r}: choose one of {', '.join(FACE_SETS)}")
    if name == "dinish":
        return dinish_fonts()
    if name == "dinish-held-out":
        return tuple(f for f in dinish_fonts() if f.name in DINISH_HELD_OUT)
    if name == "debian+dinish":
        return find_fonts() + tuple(f for f in dinish_fonts() if f.name not in DINISH_HELD_OUT)
    return find_fonts()
