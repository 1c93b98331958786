"""Plate formats: the reader's prior of real European ones, and the broader set the generator draws.

Plate faces draw O and 0 alike, and I and 1 as one bare stroke, so the net's choice between
such twins carries little. The reader lets a twin's neighbours decide (`reading`), but a
twin between a letter and a digit stays open: `OYO9FEU` could be anything until one knows
that British plates are `LLDD LLL`. This module knows the common current formats and says
which twins to swap so that a reading fits one of them.

`DRAWN_FORMATS` are the texts `viewer.dataset` draws its training plates with: real layouts
with their separators, but also vanity plates and texts of any character anywhere.
"""
from __future__ import annotations

# Alike in plate faces, so a known plate format may swap them.
TWINS = {"O": "0", "0": "O", "I": "1", "1": "I"}
# Kinds of characters, left to right: L a letter, D a digit (separators and spaces left out).
FORMATS: dict[str, tuple[str, ...]] = {
    "SK": ("LLDDDLL",),                  # BA-123XY
    "CZ": ("DLDDDDD", "DLLDDDD"),        # 1A2 3456, 1AB 2345
    "GB": ("LLDDLLL",),                  # AB12 CDE
    "FR, IT": ("LLDDDLL",),              # AB-123-CD, AB 123CD
    "ES": ("DDDDLLL",),                  # 1234 BCD
    "PL": ("LLDDDDD", "LLLDDDD", "LLLDDLL"),  # WA 12345, KRA 1234, KRA 12AB
    "HU": ("LLLDDD", "LLLLDDD"),         # ABC-123, AA AA-123
    "RO": ("LLDDLLL",),                  # CJ 12 ABC
}
# Sorted, so that the search visits them in the same order in every process (string hashes,
# and so a set's order, change from run to run).
PATTERNS: tuple[str, ...] = tuple(sorted({p for patterns in FORMATS.values() for p in patterns}))
MAX_SWAPS = 2        # a reading that needs more twins swapped is not of a known format

# What may stand between groups of a drawn plate text: a gap, a hyphen, colon dots, and `*`
# for the two stacked round stamps of SK/CZ/DE plates.
SEPARATORS = " -:*"
# The generator's plate texts: L a letter, D a digit, X either; separators as in the text. Real
# layouts first. Broader than FORMATS on purpose: the reader's prior must know only real
# formats, or it would "correct" every twin, but the net has to see every character in every
# place and beside any other (vanity texts, and "anything" to even out the classes: see
# `viewer.dataset.windows.class_keep_probability`), and the separators drawn between groups.
DRAWN_FORMATS: tuple[str, ...] = (
    "LL-DDDLL", "LL*DDDLL", "LL DDDLL",          # Slovakia
    "DLD*DDDD", "DLD DDDD", "DLX:DDDD",          # Czechia
    "L*LL DDDD", "LL*L DDD", "LLL*LL DD",        # Germany
    "LLDD LLL", "LLL-DDD", "DDD-LLL", "LL-DDD-LL",  # others in Europe
    "LLLLLL", "LLL LLL", "LLLLLLL", "LL-LLLL", "L*LLLLL",  # vanity plates
    "XXXXXXX", "XXXXXX", "XXXXX", "XXX XXXX", "XXXX-XXX",  # anything, for class balance
)


def kinds(text: str) -> str:
    """The letter/digit pattern of a text: `RK857AI` -> `LLDDDLL`."""
    return "".join("D" if c.isdigit() else "L" for c in text)


def twin_swaps(text: str, twins: dict[str, str]) -> list[int]:
    """Positions of `text` to replace by their twin so that it fits a known format.

    Nothing when the text fits a format already, when no format is within `MAX_SWAPS` twin
    swaps, or when two formats are equally near: the prior only decides what the glyphs
    leave open, and only when it is unambiguous.
    """
    pattern = kinds(text)
    if pattern in PATTERNS:
        return []
    options = []
    for target in PATTERNS:
        if len(target) != len(pattern):
            continue
        diff = [k for k, (a, b) in enumerate(zip(pattern, target)) if a != b]
        if len(diff) <= MAX_SWAPS and all(text[k] in twins for k in diff):
            options.append(diff)
    if not options:
        return []
    fewest = min(len(diff) for diff in options)
    nearest = [diff for diff in options if len(diff) == fewest]
    return nearest[0] if len(nearest) == 1 else []
