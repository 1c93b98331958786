"""Scoring plate readings against the truth: edits, character accuracy, plates found in photos.

A reading is scored as a person checking it would: by the fewest edits that turn the true
text into the read one, named one by one ("M>H" read H for M, "-0" lost a 0, "+I" invented
an I), so that a figure says not only how often the reader errs but how. The benchmarks on
real plates and the tests of the reader use the same rules.
"""
from __future__ import annotations

from collections import Counter

from viewer.plates.locate import Box, iou

COLLAPSED = 0.5      # a plate read with fewer than half of its characters right has collapsed
MIN_IOU = 0.3        # a found plate's letters overlap the true plate box at least this much


def edits(read: str, truth: str) -> Counter:
    """The edits from `truth` to `read` along one cheapest alignment: "M>H" a substitution,
    "-0" a lost character, "+I" an invented one. A W read as VV counts as W>V and +V."""
    table = [[max(i, j) if not i or not j else 0 for j in range(len(read) + 1)]
             for i in range(len(truth) + 1)]
    for i in range(1, len(truth) + 1):
        for j in range(1, len(read) + 1):
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1,
                              table[i - 1][j - 1] + (truth[i - 1] != read[j - 1]))
    found: Counter = Counter()
    i, j = len(truth), len(read)
    while i or j:
        if i and j and table[i][j] == table[i - 1][j - 1] + (truth[i - 1] != read[j - 1]):
            if truth[i - 1] != read[j - 1]:
                found[f"{truth[i - 1]}>{read[j - 1]}"] += 1
            i, j = i - 1, j - 1
        elif i and table[i][j] == table[i - 1][j] + 1:
            found[f"-{truth[i - 1]}"] += 1
            i -= 1
        else:
            found[f"+{read[j - 1]}"] += 1
            j -= 1
    return found


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions each cost one (the
    number of edits `edits` finds)."""
    return sum(edits(a, b).values())


def char_accuracy(read: str, truth: str) -> float:
    """1 - edit distance / length of the truth, floored at 0."""
    return max(0.0, 1.0 - edit_distance(read, truth) / max(1, len(truth)))


def reading_figures(readings: list[tuple[str, str]]) -> dict:
    """Figures of (read, truth) pairs: the mean character accuracy, how many were read exactly
    (and their share), how many collapsed, and every edit with its count, most frequent
    first. No readings give zeros, not a division by zero."""
    count = max(1, len(readings))
    accuracies = [char_accuracy(read, truth) for read, truth in readings]
    exact = sum(read == truth for read, truth in readings)
    found = sum((edits(read, truth) for read, truth in readings), Counter())
    return {"count": len(readings), "char_accuracy": sum(accuracies) / count,
            "exact": exact, "exact_share": exact / count,
            "collapsed": sum(a < COLLAPSED for a in accuracies),
            "errors": dict(found.most_common())}


def is_found(box: Box | None, truth: Box) -> bool:
    """The read letters' box overlaps the plate (IoU >= MIN_IOU) and is centred inside it:
    a plate found in a photo, whatever was read on it."""
    if box is None:
        return False
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    inside = truth[0] <= cx <= truth[0] + truth[2] and truth[1] <= cy <= truth[1] + truth[3]
    return inside and iou(box, truth) >= MIN_IOU
