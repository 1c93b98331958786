"""A seeded random walk through the viewer (a "monkey"): thousands of real user actions, and after
each one, with every worker drained, the invariants that issue 17's bugs broke.

Invariants: no exception reached Qt; every panel shows the current map (the plate its image,
the layer its data and place, the scale control and summary its scale, the letters its
reading, the conv1 tiles and the Blobs tab its blobs, the hover readout a cell inside it); the
status summary is there; the view holds the image (fitted after an image is opened). Issue 27:
the walk also opens photos with plates, searches them (whole, a Shift-drag, cancelled,
aborted with Esc) and clicks the plates found; the plate boxes and the region belong to the
current image and model, the Surgery tab to the current model and the map's scale.

The plate search is a stand-in (`fake_search`, a few boxes at once): the real one takes
seconds a photo, and `test_locate` and `test_gui_plates` check it; what the walk checks is
what the window does with its answers.

A failure prints the seed and the action list that reproduces it; rerun one seed with
MONKEY_SEED=... (MONKEY_STEPS=... for a longer walk), or the listing itself, saved to a file,
with MONKEY_REPLAY=file. New controls join the walk by adding an
entry to `actions()`.
"""
from __future__ import annotations

import ast
import os
import random
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
from PyQt5 import QtCore, QtWidgets

from conftest import OTHER_NET, random_biases
from gui_helpers import (MAP_TIMEOUT, Recorder, default_args, generated_plate,  # noqa: F401
                         settings)
from viewer.net.weights import init_weights
from viewer.caffe import model_io
from viewer.maps.export import save_png
from viewer.app import session
from viewer.cli.view import initial_model
from viewer.app.scale import scale_text
from viewer.app import jobs
from viewer.app.state import ViewerState
from viewer.gui.main_window import MainWindow
from viewer.maps.labels import is_plate_model
from viewer.plates.locate import FoundPlate, PhotoReading
from viewer.plates.reading import PlateReading

SEEDS = [int(os.environ["MONKEY_SEED"])] if "MONKEY_SEED" in os.environ else [17, 1700]
STEPS = int(os.environ.get("MONKEY_STEPS", 1000))     # per seed: ~20-30 s each on 2 cores
SIZES = [(48, 130), (60, 160), (40, 180), (72, 120), (36, 100)]   # small: passes take ms
KEYS = [QtCore.Qt.Key_K, QtCore.Qt.Key_7, QtCore.Qt.Key_A, QtCore.Qt.Key_Escape,
        QtCore.Qt.Key_Home, QtCore.Qt.Key_Plus, QtCore.Qt.Key_Minus, QtCore.Qt.Key_R]

Action = tuple[str, tuple]


class Monkey:
    """Draws actions from the real set and carries them out on one window."""

    def __init__(self, window: MainWindow, qtbot, folder: Path, rng: random.Random) -> None:
        self.w, self.qtbot, self.folder, self.rng = window, qtbot, folder, rng
        self.files: dict[str, Path] = {}
        self.opened_image = False
        other = random_biases(init_weights(
            model_io.parse_prototxt(OTHER_NET, "other.prototxt")[0], seed=3), 3)
        self.other = (folder / "other.prototxt", folder / "other.caffemodel")
        model_io.write_net(other, *self.other)

    # the real set of actions ----------------------------------------------------------------
    def actions(self) -> dict[str, tuple[float, Callable[[], tuple], Callable[..., None]]]:
        """name -> (weight, draw the arguments, carry them out)."""
        w, rng = self.w, self.rng
        return {
            "key": (6, lambda: (rng.randrange(4), rng.choice(KEYS)), self.key),
            # Scales up to about 1 on these small images keep the passes at a few ms.
            "slider": (3, lambda: (rng.randint(w.scale.slider.minimum(), 110),), self.slider),
            "spin": (3, lambda: (rng.choice(["0.5", "0.9", "1.234", "0.35", "0.05", "0.777"]),
                                 rng.choice(["return", "escape"])), self.spin),
            "step": (2, lambda: (rng.choice([-1, 1]),), lambda d: w.controller.step_scale(d)),
            "auto": (0.3, lambda: (), lambda: w.scale.auto.click()),
            "channel": (4, lambda: (rng.randrange(max(1, w.channels.count())),),
                        lambda k: w.channels.setCurrentIndex(min(k, w.channels.count() - 1))),
            "tab": (2, lambda: (rng.randrange(w.tabs.count()),), w.tabs.setCurrentIndex),
            "blob": (2, lambda: (rng.randrange(w.blobs.picker.count()),),
                     lambda k: w.blobs.picker.setCurrentIndex(
                         min(k, w.blobs.picker.count() - 1))),
            "letter": (3, lambda: (rng.randrange(8),), self.letter),
            "filter": (3, lambda: (rng.randrange(64),), self.filter),
            "hover": (3, lambda: (rng.random(), rng.random()), self.hover),
            "raw": (1, lambda: (), lambda: w.layer_controls.raw.toggle()),
            "opacity": (1, lambda: (rng.randrange(101),), w.layer_controls.opacity.setValue),
            "zoom": (1, lambda: (rng.choice([0.5, 2.0]),),
                     lambda f: w.plate.view.scaleBy((f, f))),
            "image": (0.5, lambda: (rng.randrange(len(SIZES)), rng.randrange(1000)), self.image),
            "model": (0.2, lambda: (rng.choice(["other", "lenet"]),), self.model),
            "fine": (0.2, lambda: (), lambda: w.fine_action.trigger()),
            "cancel": (1, lambda: (), lambda: w.cancel_work()),
            "photo": (0.4, lambda: (rng.randrange(1000),), self.photo),
            "search": (0.6, lambda: (rng.choice(["wait", "esc", "cancel"]),), self.search),
            "shift_drag": (0.8, lambda: (rng.random(), rng.random(), rng.random(), rng.random(),
                                         rng.random() < 0.3), self.shift_drag),
            "plate": (1, lambda: (rng.randrange(3),), self.plate),
            "measure": (0.15, lambda: (), lambda: w.surgery.button.click()),
        }

    def draw(self) -> Action:
        table = self.actions()
        name = self.rng.choices(list(table), weights=[v[0] for v in table.values()])[0]
        return name, table[name][1]()

    def do(self, action: Action) -> None:
        name, args = action
        self.opened_image = name == "image"
        self.actions()[name][2](*args)

    def key(self, where: int, key: int) -> None:
        widgets = [self.w.plate, self.w.layer_controls.colormap, self.w.scale.slider,
                   self.w.tabs]
        self.qtbot.keyClick(widgets[where], key)

    def slider(self, value: int) -> None:
        slider = self.w.scale.slider
        slider.setSliderDown(True)
        slider.setValue(value)
        slider.setSliderDown(False)

    def spin(self, text: str, end: str) -> None:
        spin = self.w.scale.spin
        spin.setFocus()
        spin.lineEdit().selectAll()
        self.qtbot.keyClicks(spin.lineEdit(), text)
        self.qtbot.keyClick(spin, QtCore.Qt.Key_Return if end == "return" else
                            QtCore.Qt.Key_Escape)

    def letter(self, k: int) -> None:
        buttons = self.w.letters.buttons
        if buttons:
            self.qtbot.mouseClick(buttons[k % len(buttons)], QtCore.Qt.LeftButton)

    def filter(self, k: int) -> None:
        tiles = self.w.conv1.tiles
        if tiles and self.w.conv1.outputs is not None:
            self.qtbot.mouseClick(tiles[k % len(tiles)], QtCore.Qt.LeftButton)

    def hover(self, fx: float, fy: float) -> None:
        h, w = self.w.state.image.pixels.shape[:2]
        self.w.state.hover_at(fx * w, fy * h)

    def image(self, size: int, seed: int) -> None:
        path = self.folder / f"plate_{size}_{seed}.png"
        if not path.exists():
            save_png(generated_plate(*SIZES[size], seed=seed), path)
        self.w.files.open_image(path)

    def photo(self, seed: int) -> None:
        """A scene: a plate pasted into a generated background."""
        from test_locate import scene

        path = self.folder / f"scene_{seed}.png"
        if not path.exists():
            save_png(scene(seed, "4B40262")[0], path)
        self.w.files.open_image(path)

    def search(self, end: str) -> None:
        """The plates of the whole image; Esc or Cancel right after, or the answer."""
        self.w.controller.request_plates()
        if end == "esc":
            self.w.escape()
        elif end == "cancel":
            self.w.cancel_work()

    def shift_drag(self, fx: float, fy: float, fw: float, fh: float, abort: bool) -> None:
        """A Shift-drag over part of the image, let go (read), or aborted with Esc first."""
        overlay, (h, w) = self.w.found, self.w.state.image.pixels.shape[:2]
        x0, y0 = fx * w * 0.8, fy * h * 0.8
        x1, y1 = x0 + 4 + fw * (w - x0), y0 + 4 + fh * (h - y0)
        start = overlay.view.mapViewToScene(QtCore.QPointF(x0, y0))
        end = overlay.view.mapViewToScene(QtCore.QPointF(x1, y1))

        def event(finish: bool):
            return SimpleNamespace(modifiers=lambda: QtCore.Qt.ShiftModifier,
                                   button=lambda: QtCore.Qt.LeftButton, accept=lambda: None,
                                   isFinish=lambda: finish, buttonDownPos=lambda: start,
                                   pos=lambda: end)

        overlay._drag(event(False))
        if abort:
            self.w.escape()
        overlay._drag(event(True))

    def plate(self, k: int) -> None:
        """A click on a found plate."""
        boxes = self.w.found.boxes
        if boxes:
            boxes[k % len(boxes)].on_click()

    def model(self, which: str) -> None:
        if which == "other":
            self.w.files.open_model(*self.other)
        else:
            self.w.files.load_model(self.w.initial_prototxt, self.w.initial_weights)


def fake_search(dense, image, region, cancelled=lambda: False, progress=None):
    """Up to three plates inside `region`, at scales the small images map in milliseconds."""
    if cancelled():
        raise jobs.JobCancelled("cancelled")
    x, y, w, h = region
    count = 1 + (w * 7 + h) % 3
    plates = []
    for k in range(count):
        bw, bh = max(4, w // (k + 2)), max(4, h // (k + 3))
        box = (x + (w - bw) * k // 3, y + (h - bh) * k // 2, bw, bh)
        scale = (0.6, 0.8, 1.0)[(box[0] + k) % 3]
        plates.append(FoundPlate(PlateReading([], scale), box, 1.0 - 0.1 * k))
    return PhotoReading(plates)


class Owners:
    """Which image and model the plates and the region on screen were made for."""

    def __init__(self, state: ViewerState) -> None:
        self.state = state
        self.plates = self.region = (state.image, state.model)
        state.events.plates.connect(lambda plates: self._set("plates"))
        state.events.region.connect(lambda region: self._set("region"))

    def _set(self, what: str) -> None:
        setattr(self, what, (self.state.image, self.state.model))


# invariants ------------------------------------------------------------------------------------
def drain(window: MainWindow) -> None:
    """Until no worker has work (cancelled passes included) and their answers are delivered."""
    workers = (window.maps, window.slow, window.panels, window.saving)
    deadline = time.monotonic() + MAP_TIMEOUT / 1000
    idle = 0
    while idle < 3:         # idle through three rounds: results delivered, follow-ups started
        QtWidgets.QApplication.processEvents()
        if any(w.is_running() for w in workers):
            idle = 0
            assert time.monotonic() < deadline, "the workers never finished"
            time.sleep(0.001)
        else:
            idle += 1


def check_plates(window: MainWindow, owners: Owners) -> None:
    """The plate boxes and the region are the current image's and model's, inside it."""
    w, s = window, window.state
    h, wd = s.image.pixels.shape[:2]
    now = (s.image, s.model)
    assert w.found.plates == s.plates, "the boxes drawn are not the state's plates"
    assert len(w.found.boxes) == len(s.plates) == len(w.found.labels)
    if s.plates:
        assert owners.plates[0] is now[0], "plates of another image"
        assert owners.plates[1] is now[1], "plates of another model"
        assert is_plate_model(s.model.dense.labels), "plates for a model without plate labels"
    for plate in s.plates:
        x, y, bw, bh = plate.box
        assert 0 <= x and 0 <= y and x + bw <= wd and y + bh <= h, "a plate off the image"
    region = s.region
    assert w.found.region.isVisible() == (region is not None), "the region is not the state's"
    if region is not None:
        assert owners.region[0] is now[0] and owners.region[1] is now[1], \
            "a region of another image or model"
        x, y, rw, rh = region
        assert 0 <= x and 0 <= y and x + rw <= wd and y + rh <= h, "the region is off the image"
        assert w.found.region.rect().getRect() == pytest.approx(region)
    if s.chosen_plate is not None:
        assert w.found.chosen == s.chosen_plate < len(s.plates)


def check_panels(window: MainWindow) -> None:
    """The Surgery tab is the current model's, its timing at the map's scale or saying so;
    the Blobs tab offers the model's blobs."""
    w, s = window, window.state
    assert f"<b>{s.model.label}</b>" in w.surgery.summary.text(), "Surgery tab of another model"
    check_ = w.surgery.check
    if check_ is not None and s.fm is not None and w.surgery.button.isEnabled():
        stale = scale_text(check_.scale) != scale_text(s.fm.scale)
        assert ("now: Measure again" in w.surgery.timing.text()) == stale, \
            "the Surgery tab's timing does not say its scale is not the map's"
    names = [w.blobs.picker.itemText(k) for k in range(w.blobs.picker.count())]
    assert names == list(s.model.dense.engine.blob_names), "the Blobs tab is another model's"


def check(window: MainWindow, monkey: Monkey, failed_since_shown: bool) -> None:
    w, fm = window, window.state.fm
    pixels = w.state.image.pixels
    check_plates(w, monkey.owners)
    check_panels(w)
    assert w.plate.plate.image.shape[:2] == pixels.shape[:2], "the plate is not the image"
    assert w.summary.isVisible(), "no status summary"
    (x0, x1), (y0, y1) = w.plate.view.viewRange()
    h, wd = pixels.shape[:2]
    assert x0 < wd and x1 > 0 and y0 < h and y1 > 0, "the view lost the image"
    if monkey.opened_image:
        assert x0 <= 0 and y0 <= 0 and x1 >= wd and y1 >= h and \
            (wd / (x1 - x0) > 0.9 or h / (y1 - y0) > 0.9), "a new image is not fitted"
    if fm is None:
        assert failed_since_shown, "no map and no error"
        return
    assert fm.image_shape == pixels.shape[:2], "the map is of another image"
    assert fm.labels == w.state.model.dense.labels, "the map is of another model"
    if not failed_since_shown:
        assert abs(w.scale.value() - fm.scale) < 1e-9, "the scale control is not the map's"
    assert f"scale {scale_text(fm.scale)}" in w.summary.full, "the summary is not the map's"
    layer = w.state.layer
    assert layer is not None
    drawn = w.plate.active_map()
    data = layer.rgba if layer.rgba is not None else layer.values
    assert drawn.image is not None and drawn.image.shape[:2] == data.shape[:2], \
        "the layer drawn is not the map's"
    rect = drawn.mapRectToParent(drawn.boundingRect())
    assert np.allclose((rect.x(), rect.y(), rect.width(), rect.height()), layer.rect,
                       atol=1e-3), "the layer is not where the map's geometry puts it"
    reading = w.state.result.reading if w.state.result is not None else None
    if reading is not None and not failed_since_shown:
        assert w.letters.reading is reading, "the letters are not the map's reading"
        assert "at scale " + scale_text(reading.scale) in w.letters.summary.text()
    if fm.conv1 is not None:
        shown = w.conv1.outputs
        assert w.conv1.tiles_show(fm), "the conv1 tiles are not the map's: " \
            f"{None if shown is None else shown.shape} for {fm.conv1.shape}"
    blob = w.blobs.blob()
    if blob in fm.blobs and w.blobs.values is not None:
        assert w.blobs.values.shape[-2:] == fm.blobs[blob].shape[-2:], "the blob is not the map's"
    if w.readout.cell is not None:
        i, j = w.readout.cell
        assert i < fm.probs.shape[1] and j < fm.probs.shape[2], "the readout is off the map"


def replayed(path: Path) -> list[Action]:
    """The actions of a failure's listing (one `name(args)` a line), to run them again."""
    actions = []
    for line in path.read_text().splitlines():
        name, args = line.strip().split("(", 1)
        actions.append((name, ast.literal_eval("(" + args)))
    return actions


def walk(qtbot, folder: Path, settings, seed: int, steps: int) -> tuple[int, float]:
    rng = random.Random(seed)
    first = folder / "first.png"
    save_png(generated_plate(*SIZES[0], seed=seed), first)
    model = initial_model(default_args())
    window = MainWindow(model, session.read_image(first), settings, scale=0.9, auto_check=False)
    qtbot.addWidget(window)
    window.show_error = Recorder()
    window.confirm = lambda question: True
    window.files.ask_open = lambda *args: None      # no file dialog ever blocks the walk
    window.initial_prototxt, window.initial_weights = model.prototxt, model.weights
    window.resize(1100, 700)
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.show()
    monkey = Monkey(window, qtbot, folder, rng)
    monkey.owners = Owners(window.state)
    failed = [False]
    window.map_failed.connect(lambda _message: failed.__setitem__(0, True))
    window.map_shown.connect(lambda: failed.__setitem__(0, False))
    done: list[Action] = []
    start = time.perf_counter()
    replay = replayed(Path(os.environ["MONKEY_REPLAY"])) if "MONKEY_REPLAY" in os.environ \
        else None
    try:
        for step in range(len(replay) if replay else steps):
            action = replay[step] if replay else monkey.draw()
            done.append(action)
            with qtbot.captureExceptions() as exceptions:
                monkey.do(action)
                drain(window)
            assert not exceptions, f"an exception reached Qt: {exceptions[0][1]!r}"
            try:
                check(window, monkey, failed[0])
            except AssertionError:      # work a timer starts later (a relayout): drain again
                qtbot.wait(100)
                drain(window)
                check(window, monkey, failed[0])
    except Exception as err:
        listing = "\n".join(f"  {name}{args}" for name, args in done)
        pytest.fail(f"monkey seed {seed}, step {len(done)}: {err}\nactions:\n{listing}",
                    pytrace=True)
    finally:
        window.close()
    return len(done), time.perf_counter() - start


@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_walk_keeps_every_panel_on_the_current_map(qtbot, tmp_path, settings, seed,
                                                            monkeypatch):
    monkeypatch.setattr(jobs, "find_plates", fake_search)
    count, seconds = walk(qtbot, tmp_path, settings, seed, STEPS)
    print(f"monkey seed {seed}: {count} actions in {seconds:.1f} s")
    assert count == STEPS or "MONKEY_REPLAY" in os.environ
