"""The pictures of a training run: loss and accuracy curves, and the test windows it gets wrong.

Drawn with OpenCV, which the viewer already needs, so the pictures are the same on every
machine and training adds no plotting dependency. Pictures are RGB, as every picture the viewer
saves (`viewer.maps.export.save_png` writes them).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from viewer.maps.export import save_png

Series = tuple[str, list[float], list[float], tuple[int, int, int]]  # name, xs, ys, RGB

INK = (40, 40, 40)
GRID = (225, 225, 225)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Panel:
    title: str
    series: list[Series]
    log_y: bool = False
    legend_top: bool = True


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(step)) if step > 0 else 1.0
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step),
               default=magnitude * 10)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """log10 positions of 1-2-5 values (or every digit, on a short range) within [lo, hi]."""
    for mantissas in ((1, 2, 5), range(1, 10)):
        ticks = [math.log10(m) + e for e in range(math.floor(lo), math.ceil(hi) + 1)
                 for m in mantissas if lo <= math.log10(m) + e <= hi]
        if len(ticks) >= 3:
            return ticks
    return [math.log10(v) for v in _nice_ticks(10 ** lo, 10 ** hi) if v > 0]


def _label(value: float) -> str:
    if value >= 1000 and value == int(value):
        return f"{value / 1000:g}k"
    return f"{value:.4g}"


def _draw_panel(canvas: np.ndarray, panel: Panel, x0: int, y0: int, w: int, h: int) -> None:
    left, right, top, bottom = 62, 12, 30, 40
    px0, py0, pw, ph = x0 + left, y0 + top, w - left - right, h - top - bottom
    points = [(x, y) for _, xs, ys, _ in panel.series for x, y in zip(xs, ys)
              if math.isfinite(y) and (y > 0 or not panel.log_y)]
    cv2.putText(canvas, panel.title, (px0, y0 + 20), FONT, 0.55, INK, 1, cv2.LINE_AA)
    if not points:
        return
    fy = (lambda v: math.log10(v)) if panel.log_y else (lambda v: v)
    xmax = max(max(p[0] for p in points), 1)
    ylo, yhi = min(fy(p[1]) for p in points), max(fy(p[1]) for p in points)
    if yhi - ylo < 1e-6:
        ylo, yhi = ylo - 0.5, yhi + 0.5

    def to_px(x: float, y: float) -> tuple[int, int]:
        return (int(round(px0 + pw * x / xmax)), int(round(py0 + ph * (1 - (fy(y) - ylo) /
                                                                      (yhi - ylo)))))

    for t in (_log_ticks if panel.log_y else _nice_ticks)(ylo, yhi):
        yy = int(round(py0 + ph * (1 - (t - ylo) / (yhi - ylo))))
        cv2.line(canvas, (px0, yy), (px0 + pw, yy), GRID, 1)
        text = _label(10 ** t if panel.log_y else t)
        cv2.putText(canvas, text, (x0 + 4, yy + 4), FONT, 0.38, INK, 1, cv2.LINE_AA)
    for t in _nice_ticks(0, xmax):
        xx = int(round(px0 + pw * t / xmax))
        cv2.line(canvas, (xx, py0), (xx, py0 + ph), GRID, 1)
        cv2.putText(canvas, _label(t), (xx - 12, py0 + ph + 16), FONT, 0.38, INK, 1, cv2.LINE_AA)
    cv2.rectangle(canvas, (px0, py0), (px0 + pw, py0 + ph), INK, 1)
    cv2.putText(canvas, "iteration", (px0 + pw // 2 - 30, py0 + ph + 34), FONT, 0.42, INK, 1,
                cv2.LINE_AA)
    for k, (name, xs, ys, colour) in enumerate(panel.series):
        pts = [to_px(x, y) for x, y in zip(xs, ys) if math.isfinite(y) and (y > 0 or not
                                                                            panel.log_y)]
        pts = [(x, min(max(y, py0), py0 + ph)) for x, y in pts]
        if len(pts) > 1:
            cv2.polylines(canvas, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)
        for p in pts if len(pts) < 30 else []:
            cv2.circle(canvas, p, 3, colour, -1, cv2.LINE_AA)
        ly = py0 + 16 + 18 * k if panel.legend_top else \
            py0 + ph - 8 - 18 * (len(panel.series) - 1 - k)
        cv2.line(canvas, (px0 + pw - 150, ly - 4), (px0 + pw - 128, ly - 4), colour, 2)
        cv2.putText(canvas, name, (px0 + pw - 122, ly), FONT, 0.42, INK, 1, cv2.LINE_AA)


def draw_curves(panels: list[Panel], width: int = 1100, height: int = 420) -> np.ndarray:
    """The panels side by side on a white RGB canvas."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    w = width // max(len(panels), 1)
    for k, panel in enumerate(panels):
        _draw_panel(canvas, panel, k * w, 0, w, height)
    return canvas


def training_panels(losses: list[tuple[int, float, float]], tests: list[dict]) -> list[Panel]:
    """Loss (train and test, log scale) and test accuracy panels of a training run."""
    its = [t["iteration"] for t in tests]
    loss = Panel("loss (log scale)", [
        ("train", [l[0] for l in losses], [l[1] for l in losses], (30, 120, 200)),
        ("test", its, [t["loss"] for t in tests], (220, 30, 30)),
    ], log_y=True)
    accuracy = Panel("test accuracy", [
        ("all windows", its, [t["accuracy"] for t in tests], (40, 40, 40)),
        ("characters", its, [t["char_accuracy"] for t in tests], (30, 150, 30)),
        ("background", its, [t["background_accuracy"] for t in tests], (220, 30, 30)),
    ], legend_top=False)
    return [loss, accuracy]


def mistakes_sheet(images: np.ndarray, truth: np.ndarray, predicted: np.ndarray,
                   names: list[str], columns: int = 16, zoom: int = 3) -> np.ndarray:
    """Windows (N x 1 x H x W uint8) with "truth>predicted" under each, as an RGB picture; an
    empty sheet says so."""
    if not len(images):
        sheet = np.full((40, 360, 3), 255, np.uint8)
        cv2.putText(sheet, "no mistakes", (10, 26), FONT, 0.6, INK, 1, cv2.LINE_AA)
        return sheet
    h, w = images.shape[2] * zoom, images.shape[3] * zoom
    strip, gap = 16, 6
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    sheet = np.full((rows * (h + strip + gap), columns * (w + gap), 3), 255, np.uint8)
    for k, (image, t, p) in enumerate(zip(images, truth, predicted)):
        r, c = divmod(k, columns)
        y, x = r * (h + strip + gap), c * (w + gap)
        big = cv2.resize(image[0], (w, h), interpolation=cv2.INTER_NEAREST)
        sheet[y:y + h, x:x + w] = big[..., None]
        text = f"{_short(names[int(t)])}>{_short(names[int(p)])}"
        cv2.putText(sheet, text, (x + 2, y + h + 12), FONT, 0.4, INK, 1, cv2.LINE_AA)
    return sheet


def _short(name: str) -> str:
    return "bg" if name == "background" else name


def save_curves(path: str | os.PathLike, losses: list[tuple[int, float, float]],
                tests: list[dict]) -> None:
    """Write the training curves PNG atomically."""
    save_png(draw_curves(training_panels(losses, tests)), path)
