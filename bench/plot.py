"""A scatter plot with a fitted line, drawn with OpenCV so the benchmark needs no plotting library."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

INK, GRID, DOT, LINE = (40, 40, 40), (225, 225, 225), (200, 90, 30), (40, 120, 220)


def _ticks(top: float, count: int = 5) -> list[float]:
    raw = top / count
    step = 10 ** np.floor(np.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    return [k * step for k in range(int(np.ceil(top / step)) + 1)]


def growth_png(points: list[dict], slope_per_px: float, intercept_ms: float, title: str,
               path: Path, size: tuple[int, int] = (800, 520)) -> Path:
    """Forward time (ms) against input pixels (megapixels), the points and the fitted line."""
    w, h = size
    left, right, top, bottom = 80, 30, 50, 60
    canvas = np.full((h, w, 3), 255, np.uint8)
    xs = np.array([p["pixels"] for p in points], float) / 1e6
    ys = np.array([p["ms"] for p in points], float)
    xticks, yticks = _ticks(xs.max() * 1.05), _ticks(ys.max() * 1.1)
    xmax, ymax = xticks[-1], yticks[-1]

    def at(x: float, y: float) -> tuple[int, int]:
        return (int(left + x / xmax * (w - left - right)),
                int(h - bottom - y / ymax * (h - top - bottom)))

    font = cv2.FONT_HERSHEY_SIMPLEX
    for t in xticks:
        cv2.line(canvas, at(t, 0), at(t, ymax), GRID, 1)
        label = f"{t:g}"
        cv2.putText(canvas, label, (at(t, 0)[0] - 4 * len(label), h - bottom + 20), font, 0.45,
                    INK, 1, cv2.LINE_AA)
    for t in yticks:
        cv2.line(canvas, at(0, t), at(xmax, t), GRID, 1)
        label = f"{t:g}"
        cv2.putText(canvas, label, (left - 10 - 9 * len(label), at(0, t)[1] + 5), font, 0.45,
                    INK, 1, cv2.LINE_AA)
    cv2.line(canvas, at(0, 0), at(xmax, 0), INK, 1)
    cv2.line(canvas, at(0, 0), at(0, ymax), INK, 1)
    fit_end = min(xmax, (ymax - intercept_ms) / (slope_per_px * 1e6)) if slope_per_px > 0 else xmax
    cv2.line(canvas, at(0, max(0.0, intercept_ms)), at(fit_end, intercept_ms +
             slope_per_px * 1e6 * fit_end), LINE, 2, cv2.LINE_AA)
    for x, y, p in zip(xs, ys, points):
        cv2.circle(canvas, at(x, y), 5, DOT, -1, cv2.LINE_AA)
        cv2.putText(canvas, f"x{p['scale']:g}", (at(x, y)[0] + 7, at(x, y)[1] - 7), font, 0.4,
                    INK, 1, cv2.LINE_AA)
    cv2.putText(canvas, title, (left, 30), font, 0.55, INK, 1, cv2.LINE_AA)
    cv2.putText(canvas, "input megapixels", (w // 2 - 70, h - 15), font, 0.5, INK, 1,
                cv2.LINE_AA)
    cv2.putText(canvas, "ms", (15, top - 20), font, 0.5, INK, 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), canvas)
    return path
