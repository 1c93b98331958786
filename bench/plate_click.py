"""Clicking a found plate (issue 27 item 4): the click to the plate's map on screen, per photo.

Each photo opens in an offscreen window as `python main.py PHOTO` opens it (automatic scale,
then the plate search); once the plates are drawn, the map goes to another scale, and each
found plate is clicked in turn, timed from the click to its map on screen: only the plate's
neighbourhood is mapped, or the map on screen is kept when it is at the plate's scale. Target:
at most 1 s a click.

    python -m bench.plate_click PHOTO... [--engine NAME]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

TARGET_S = 1.0


def _wait(app, done, timeout_s: float, what: str) -> None:
    end = time.perf_counter() + timeout_s
    while not done():
        if time.perf_counter() > end:
            raise TimeoutError(f"gave up waiting for {what} after {timeout_s:g} s")
        app.processEvents()
        time.sleep(0.002)


def clicks_on(app, photo: Path, engine: str | None) -> list[float]:
    """Seconds from each plate's click to its map on screen."""
    from viewer.cli.run import build_parser
    from viewer.cli.view import opening_from_args
    from viewer.gui.app import WINDOW_SIZE, create_window
    from viewer.gui.settings import Settings

    args = build_parser().parse_args(["view", str(photo)] + (["--engine", engine] if engine
                                                             else []))
    window = create_window(opening_from_args(args), Settings(None), auto_check=False)
    window.show_error = lambda message: None
    window.resize(*WINDOW_SIZE)
    window.show()
    shown: list[float] = []
    window.map_shown.connect(lambda: shown.append(time.perf_counter()))
    _wait(app, lambda: window.state.plates and not window.maps.is_busy(), 120, "the plates")
    seconds = []
    for index in range(len(window.state.plates)):
        count = len(shown)
        window.controller.choose_scale(round(window.state.plates[index].scale * 1.3, 2))
        _wait(app, lambda: len(shown) > count and not window.maps.is_busy(), 60, "a map")
        count = len(shown)
        clicked = time.perf_counter()
        window.found.plate_clicked.emit(index)
        _wait(app, lambda: len(shown) > count and not window.maps.is_busy(), 60, "the plate map")
        seconds.append(shown[-1] - clicked)
    window.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plate_click", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--engine", help="inference engine (default: the viewer's)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg

    app = pg.mkQApp("Net Surgery Viewer")
    every = []
    for photo in args.photos:
        seconds = clicks_on(app, photo, args.engine)
        every += seconds
        print(f"{photo.name}: {len(seconds)} plates, click -> plate map "
              f"{', '.join(f'{s:.2f}' for s in seconds)} s")
    if every:
        print(f"median {statistics.median(every):.2f} s, max {max(every):.2f} s over "
              f"{len(every)} clicks (target <= {TARGET_S:g} s: {max(every) <= TARGET_S}); load "
              f"average {[round(x, 2) for x in os.getloadavg()]}")
    print(json.dumps({"clicks_s": [round(s, 3) for s in every]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
