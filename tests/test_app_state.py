"""The viewer's state and controller without Qt: generations, stale answers, events, bounds.

The workers are a synchronous stand-in that keeps the latest job of each kind until the test
runs it and hands its answer back as a worker's queued signal would, so each step of the
window's life is a plain call here and every number can be checked.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import plate_like
from viewer.app import jobs, session
from viewer.app.controller import Controller, Runners
from viewer.app.jobs import JobKind, MapTag, PlatesTag
from viewer.app.scale import SCALE_FLOOR, SCALE_MAX, scale_range
from viewer.app.state import ViewerState
from viewer.files import paths
from viewer.plates.locate import FoundPlate, PhotoReading
from viewer.plates.reading import Letter, PlateReading

ROOT = Path(__file__).resolve().parent.parent


class Runner:
    """A worker that runs nothing until `run(kind)`: the latest job of each kind waits."""

    def __init__(self) -> None:
        self.jobs: dict[str, tuple] = {}
        self.controller: Controller | None = None

    def submit(self, kind, run, tag=None) -> None:
        self.jobs[kind] = (run, tag)

    def cancel(self, kinds=None) -> list[str]:
        busy = [kind for kind in self.jobs if kinds is None or kind in kinds]
        for kind in busy:
            del self.jobs[kind]
        return busy

    def should_stop(self) -> bool:
        return False

    def run(self, kind: JobKind):
        """Run the waiting job of `kind` and deliver its result, as the worker would."""
        run, tag = self.jobs.pop(kind)
        result = run()
        self.controller.job_done(kind, tag, result)
        return result


class Recorder:
    """Every emission of the state's events, as (event name, values)."""

    def __init__(self, state: ViewerState) -> None:
        self.seen: list[tuple] = []
        for name, event in vars(state.events).items():
            event.connect(lambda *values, name=name: self.seen.append((name, values)))

    def named(self, name: str) -> list[tuple]:
        return [values for seen, values in self.seen if seen == name]


@pytest.fixture(scope="module")
def bundled() -> session.LoadedModel:
    net = session.read_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS)
    return session.build_model(net, paths.FCN_PROTOTXT, paths.FCN_WEIGHTS, "numpy")


@pytest.fixture
def image() -> session.LoadedImage:
    return session.LoadedImage(np.dstack([plate_like(60, 160, seed=2)] * 3), None)


@pytest.fixture
def viewer(bundled, image):
    """(state, controller, maps runner, slow runner, panels runner, saving runner)."""
    state = ViewerState(bundled, image)
    runners = Runners(Runner(), Runner(), Runner(), Runner())
    controller = Controller(state, runners, auto_check=False)
    for runner in vars(runners).values():
        runner.controller = controller
    return SimpleNamespace(state=state, control=controller, **vars(runners))


def test_the_app_package_loads_without_qt():
    code = ("import sys, viewer.app.controller, viewer.app.state, viewer.app.pictures; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('PyQt5', 'pyqtgraph')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_new_state_is_at_generation_two_with_the_scale_in_its_range(bundled, image):
    state = ViewerState(bundled, image, channel="A")
    assert state.generation == 2 and state.fm is None and state.layer is None
    assert state.channel == "A" and state.filter is None and state.letter is None
    assert state.blob == bundled.dense.score_blob
    assert state.extra_blobs() == (bundled.dense.score_blob,)     # every pass returns it
    expected = scale_range(bundled.dense.planner.min_scale((60, 160)),
                           bundled.dense.planner.max_scale((60, 160)))
    assert (state.scale_range.smallest, state.scale_range.high) == \
        (expected.smallest, expected.high)
    assert state.scale == 1.0


def test_the_scale_is_clamped_into_its_range_and_each_setting_is_announced(viewer):
    state, seen = viewer.state, Recorder(viewer.state)
    smallest, high = state.scale_range.smallest, state.scale_range.high
    assert state.set_scale(100.0) == high == SCALE_MAX
    assert state.set_scale(0.001) == smallest and smallest >= SCALE_FLOOR
    assert state.set_scale(0.9) == 0.9
    assert seen.named("scale") == [(SCALE_MAX,), (smallest,), (0.9,)]


def test_scale_range_rounds_the_limit_down_to_hundredths_and_keeps_the_exact_minimum():
    bounds = scale_range(0.2547, 1.15, "a reason")
    assert (bounds.smallest, bounds.low, bounds.high, bounds.reason) == \
        (0.2547, 0.26, 1.15, "a reason")
    assert bounds.clamp(0.1) == 0.2547 and bounds.clamp(2.0) == 1.15
    assert scale_range(0.5, 0).high == 0.5            # nothing fits: one scale
    assert scale_range(0.01).smallest == SCALE_FLOOR


def test_a_map_request_is_tagged_with_the_generation_and_its_answer_is_shown(viewer):
    state, seen = viewer.state, Recorder(viewer.state)
    state.set_scale(0.8)
    viewer.control.request_map()
    run, tag = viewer.maps.jobs[JobKind.MAP]
    assert tag.generation == 2 and tag.scale == 0.8
    result = viewer.maps.run(JobKind.MAP)
    assert state.result is result and state.fm.scale == 0.8 and state.coarse is result
    assert state.shown_tag is tag and not state.auto_shown
    assert seen.named("map") == [(result,)]
    assert state.layer.mode == "best" and state.layer.rgba.shape[:2] == state.fm.probs.shape[1:]


def test_an_answer_to_an_older_generation_is_dropped(viewer, image):
    state, control = viewer.state, viewer.control
    control.request_map()
    run, stale_tag = viewer.maps.jobs.pop(JobKind.MAP)
    stale = run()
    control.open_image(session.LoadedImage(image.pixels[:, :120].copy(), None))
    assert state.generation == 3 > stale_tag.generation
    seen = Recorder(state)
    for kind in ("map", "auto", JobKind.FINE, JobKind.PLATES):
        control.job_done(kind, stale_tag if kind != JobKind.PLATES else PlatesTag(2, False),
                         stale if kind != JobKind.PLATES else PhotoReading([]))
    assert state.result is None and seen.seen == []
    control.job_done("model", stale_tag, stale)       # the loader's, not the controller's
    control.job_done("no such kind", stale_tag, stale)
    assert state.result is None and seen.seen == []


def test_a_new_image_clears_the_map_plates_letter_and_cell(viewer, image):
    state, control = viewer.state, viewer.control
    control.request_map()
    viewer.maps.run(JobKind.MAP)
    state.set_plates([FoundPlate(PlateReading([], 1.0), (1, 2, 30, 10), 0.5)])
    state.choose_plate(0)
    state.hover_cell(1, 2)
    assert state.cell == (1, 2) and state.chosen_plate == 0
    seen = Recorder(state)
    other = session.LoadedImage(plate_like(40, 100, seed=4), Path("other.png"))
    control.open_image(other)
    assert state.image is other and state.generation == 3
    assert (state.result, state.coarse, state.cell, state.letter, state.chosen_plate,
            state.plates) == (None, None, None, None, None, [])
    assert seen.named("image") == [(other,)]
    smallest = state.model.dense.planner.min_scale((40, 100))
    assert seen.named("scale_range")[0][0].smallest == max(SCALE_FLOOR, smallest)


def test_a_new_model_keeps_a_channel_it_has_and_drops_one_it_lacks(viewer, bundled,
                                                                    other_net):
    state, seen = viewer.state, Recorder(viewer.state)
    state.set_channel("K")
    other = session.build_model(other_net, Path("other.prototxt"), None, "numpy")
    state.set_model(other)
    assert state.generation == 3 and state.channel is None and state.filter is None
    assert state.blob == other.dense.engine.blob_names[0]      # the scores' name is another
    state.set_model(bundled)
    assert state.generation == 4 and state.channel is None
    state.set_channel("K")
    state.set_model(bundled)
    assert state.channel == "K"
    assert [values[0] for values in seen.named("model")] == [other, bundled, bundled]


def test_picks_are_checked_and_announced(viewer):
    state, control = viewer.state, viewer.control
    control.request_map()
    viewer.maps.run(JobKind.MAP)
    seen = Recorder(state)
    with pytest.raises(ValueError):
        state.set_channel("not a class")
    state.select_filter(3)
    assert state.filter == 3 and state.layer.mode == "filter 3"
    assert len(state.conv1_kernels()) == len(state.fm.conv1) == 20
    with pytest.raises(IndexError):
        state.select_filter(20)
    state.set_channel("7")             # a channel leaves the filter
    assert (state.channel, state.filter) == ("7", None)
    layer = state.layer
    assert layer.title == "P(7)" and np.array_equal(
        layer.values, state.fm.probs[state.fm.labels.index("7")])
    state.set_raw(True)
    assert state.layer.title == "raw score of 7" and state.layer.levels == (
        float(state.fm.scores.min()), float(state.fm.scores.max()))
    letters = state.result.reading.letters if state.result.reading else []
    with pytest.raises(IndexError):
        state.select_letter(len(letters))
    assert len(seen.named("pick")) == 2 and len(seen.named("layer")) == 3
    assert seen.named("options")[0][0].raw_scores is True
    with pytest.raises(ValueError):
        state.set_opacity(1.5)


def test_a_letter_pick_lasts_as_long_as_its_reading(viewer):
    state = viewer.state
    viewer.control.request_map()
    result = viewer.maps.run(JobKind.MAP)
    fm = result.fm
    k = fm.labels.index("B")
    result.reading = PlateReading([Letter("B", float(fm.probs[k, 0, 1]), [("B", 0.5)],
                                          fm.geometry.cell_window(0, 1), (0, 1))], fm.scale)
    state.select_letter(0)
    assert (state.channel, state.letter) == ("B", 0)
    state.show_result(result)          # the same reading again (a fine map keeps it)
    assert state.letter == 0
    state.show_result(jobs.MapResult(fm))
    assert state.letter is None and state.channel == "B"


def test_the_hovered_cell_stays_only_while_the_map_has_it(viewer):
    state, control = viewer.state, viewer.control
    control.request_map()
    viewer.maps.run(JobKind.MAP)
    _, h, w = state.fm.probs.shape
    seen = Recorder(state)
    state.hover_cell(h - 1, w - 1)
    state.hover_cell(h, 0)
    assert seen.named("cell") == [((h - 1, w - 1),), (None,)]
    state.hover_cell(h - 1, w - 1)
    control.choose_scale(0.5)          # a smaller map: that cell is gone
    viewer.maps.run(JobKind.MAP)
    assert state.fm.probs.shape[1] < h and state.cell is None
    x, y, cw, ch = state.fm.geometry.cell_window(1, 2)
    state.hover_at(x + cw / 2, y + ch / 2)
    assert state.cell == state.fm.geometry.cell_at(x + cw / 2, y + ch / 2)


def test_the_automatic_scale_sets_the_scale_and_then_looks_for_plates(viewer, monkeypatch):
    state, control = viewer.state, viewer.control
    monkeypatch.setattr(jobs, "reading_module", lambda: SimpleNamespace(
        auto_read=lambda dense, image: (None, dense.run(image, 0.7))))
    control.request_auto_scale()
    assert set(viewer.maps.jobs) == {JobKind.AUTO}
    viewer.maps.run(JobKind.AUTO)
    assert state.scale == 0.7 and state.fm.scale == 0.7 and state.auto_shown
    assert set(viewer.maps.jobs) == {JobKind.PLATES}
    _, tag = viewer.maps.jobs[JobKind.PLATES]
    assert tag == PlatesTag(state.generation, False)


def test_a_failed_automatic_scale_with_nothing_shown_maps_at_the_current_scale(viewer):
    state, control, seen = viewer.state, viewer.control, Recorder(viewer.state)
    control.job_failed(JobKind.AUTO, MapTag(state.generation, 1.0), "no reading")
    assert seen.named("failed") == [(JobKind.AUTO, "no reading", True)]
    assert set(viewer.maps.jobs) == {JobKind.MAP}
    viewer.maps.run(JobKind.MAP)
    control.job_failed(JobKind.AUTO, MapTag(state.generation, 1.0), "again")
    assert seen.named("failed")[-1] == (JobKind.AUTO, "again", False)
    assert viewer.maps.jobs == {}
    control.job_failed(JobKind.MAP, MapTag(state.generation - 1, 1.0), "stale")
    assert len(seen.named("failed")) == 2


def test_the_fine_map_follows_the_coarse_one_unless_the_scale_is_held(viewer):
    state, control = viewer.state, viewer.control
    control.request_map()
    coarse = viewer.maps.run(JobKind.MAP)
    control.hold_scale(True)
    control.set_fine(True)
    assert state.fine_on and JobKind.FINE not in viewer.maps.jobs
    control.hold_scale(False)
    _, tag = viewer.maps.jobs[JobKind.FINE]
    assert tag.scale == coarse.fm.scale
    fine_map = viewer.maps.run(JobKind.FINE)
    assert state.result is fine_map and fine_map.fm.geometry.stride == (1, 1)
    assert state.coarse is coarse
    control.set_fine(False)
    assert state.result is coarse


def test_cancel_says_what_stopped_and_puts_the_scale_back_to_the_map(viewer):
    state, control = viewer.state, viewer.control
    control.request_map()
    viewer.maps.run(JobKind.MAP)
    control.choose_scale(0.6)
    control.request_check()
    seen = Recorder(state)
    assert control.cancel(background=False) == [JobKind.MAP]
    assert state.scale == 1.0 and JobKind.SURGERY in viewer.slow.jobs
    assert control.cancel() == [JobKind.SURGERY]
    assert seen.named("check_stopped") == [(None,)]
    assert seen.named("status")[-1] == ("cancelled: timing the surgery", 8000)
    assert control.cancel() == []


def test_a_blob_missing_from_the_map_is_computed_at_its_scale(viewer):
    state, control = viewer.state, viewer.control
    control.request_map()
    viewer.maps.run(JobKind.MAP)
    assert "pool1" not in state.fm.blobs
    seen = Recorder(state)
    control.pick_blob("pool1")
    assert state.extra_blobs() == ("pool1",) and state.blob_values() == (None, None)
    _, tag = viewer.maps.jobs[JobKind.BLOB]
    assert tag is state.fm
    viewer.maps.run(JobKind.BLOB)
    values, labels = state.blob_values()
    assert values.shape[0] == 20 and labels is None
    assert len(seen.named("blob")) == 2
    with pytest.raises(ValueError):
        state.pick_blob("no such blob")


def test_the_chosen_plate_gives_its_reading_to_a_map_at_its_scale(viewer):
    state, control = viewer.state, viewer.control
    reading = PlateReading([], 0.9)
    plate = FoundPlate(reading, (10, 5, 100, 30), 0.8)
    control.job_done(JobKind.PLATES, PlatesTag(state.generation, True), PhotoReading([plate]))
    assert state.plates == [plate] and state.chosen_plate == 0 and state.scale == 0.9
    viewer.maps.run(JobKind.MAP)
    assert state.fm.scale == 0.9 and state.result.reading is reading
    with pytest.raises(IndexError):
        state.choose_plate(1)


def test_the_conv1_tiles_of_an_older_map_are_dropped(viewer):
    state, control = viewer.state, viewer.control
    control.request_map()
    viewer.maps.run(JobKind.MAP)
    control.request_tiles(30)
    run, tag = viewer.panels.jobs.pop(JobKind.TILES)
    pictures = run()
    assert len(pictures) == 20 and pictures[0].shape[0] == 30
    control.choose_scale(0.9)
    viewer.maps.run(JobKind.MAP)
    seen = Recorder(state)
    control.job_done(JobKind.TILES, tag, pictures)
    assert state.tiles is None and seen.seen == []
    control.request_tiles(30)
    viewer.panels.run(JobKind.TILES)
    assert state.tiles.fm is state.fm and seen.named("tiles") == [(state.tiles,)]


def test_job_kinds_are_their_words(viewer):
    assert [kind.value for kind in JobKind] == ["map", "auto", "model", "surgery", "blob",
                                                 "fine", "plates", "tiles", "save",
                                                 "explain"]
    assert JobKind("fine") is JobKind.FINE and f"{JobKind.MAP}" == "map"
    assert JobKind.AUTO.doing == "choosing the scale"


def test_the_asked_explanation_follows_each_map_and_drops_stale_answers(viewer):
    state, control = viewer.state, viewer.control
    control.choose_scale(1.0)
    viewer.maps.run(JobKind.MAP)
    state.hover_cell(2, 5)
    control.explain_hovered()
    first = viewer.panels.run(JobKind.EXPLAIN)
    assert state.explanation is first and first.cell == (2, 5)
    assert first.label == state.fm.labels[int(state.fm.scores[:, 2, 5].argmax())]
    control.choose_scale(1.5)                   # the same image point, at the new scale
    viewer.maps.run(JobKind.MAP)
    assert JobKind.EXPLAIN in viewer.panels.jobs
    second = viewer.panels.run(JobKind.EXPLAIN)
    assert state.explanation is second and second.geometry.scale[0] == pytest.approx(1.5)
    x, y, w, h = first.geometry.cell_window(*first.cell)
    assert second.cell == second.geometry.cell_at(x + w / 2, y + h / 2)
    control.explain_hovered()                   # asked, then the image changes: dropped
    run, tag = viewer.panels.jobs.pop(JobKind.EXPLAIN)
    state.set_image(state.image)
    control.job_done(JobKind.EXPLAIN, tag, run())
    assert state.explanation is None and state.explain_request is None
