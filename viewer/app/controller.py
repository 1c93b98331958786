"""What the viewer asks of its workers, and what it does with their answers: one handler per
kind of job.

The controller turns the user's requests (a scale, the automatic scale, plates in a region,
the surgery timing, a blob, the fine map, a file to write) into jobs, each tagged with the
state's generation, and hands their results to the state, dropping stale ones. A worker is
anything with `submit`, `cancel` and `should_stop` (the window's `LatestWorker` threads, or a
test's synchronous stand-in); results come back through `job_done` and `job_failed` on the
thread that owns the state. Models are opened by the window's loader on the maps worker; the
controller takes them through `open_model`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from viewer.app import fine, jobs, pictures
from viewer.app.jobs import JobKind, MapResult, MapTag, PlatesTag
from viewer.app.scale import stepped
from viewer.app.session import LoadedImage, LoadedModel
from viewer.app.state import Tiles, ViewerState
from viewer.maps.preprocess import Transformer
from viewer.plates import locate


class Runner(Protocol):
    """A worker: the latest job of each kind runs, cancelled ones are dropped."""

    def submit(self, kind: str, run: Callable[[], Any], tag: Any = None) -> None: ...

    def cancel(self, kinds: tuple[str, ...] | None = None) -> list[str]: ...

    def should_stop(self) -> bool: ...


@dataclass
class Runners:
    """The workers: `maps` for what the user waits for (maps, automatic scale, blobs, fine
    maps, plates, models), `slow` for the surgery timing, which never holds a map up,
    `panels` for the conv1 tiles and `saving` for files."""

    maps: Runner
    slow: Runner
    panels: Runner
    saving: Runner


class Controller:
    """Requests to the workers and handlers of their answers, over one `ViewerState`.

    `auto_check` times the surgery after each new model or image; `plates_progress(done,
    total)` is called from the maps worker during a plate search, so it must be thread-safe.
    """

    def __init__(self, state: ViewerState, runners: Runners, auto_check: bool = True,
                 plates_progress: Callable[[int, int], None] | None = None) -> None:
        self.state, self.runners, self.auto_check = state, runners, auto_check
        self.plates_progress = plates_progress or (lambda done, total: None)
        self._check_tag: MapTag | None = None       # the surgery timing asked for last
        self._done: dict[JobKind, Callable[[JobKind, Any, Any], None]] = {
            JobKind.MAP: self._map_done, JobKind.AUTO: self._map_done,
            JobKind.FINE: self._fine_done, JobKind.BLOB: self._blob_done,
            JobKind.PLATES: self._plates_done, JobKind.SURGERY: self._check_done,
            JobKind.TILES: self._tiles_done, JobKind.SAVE: self._save_done,
            JobKind.EXPLAIN: self._explain_done}
        self._failed: dict[JobKind, Callable[[JobKind, Any, str], None]] = {
            JobKind.MAP: self._map_failed, JobKind.AUTO: self._map_failed,
            JobKind.FINE: self._fine_failed, JobKind.PLATES: self._plates_failed,
            JobKind.SURGERY: self._check_failed, JobKind.SAVE: self._save_failed,
            JobKind.EXPLAIN: self._explain_failed}

    def start(self, scale: float | None = None) -> None:
        """The first map: at `scale` (the command line's), else at the automatic scale."""
        if scale:
            self.state.set_scale(scale)
            self.request_map()
        else:
            self.request_auto_scale()

    # what the user opens and picks ---------------------------------------------------------------
    def open_model(self, model: LoadedModel) -> None:
        """Swap in a loaded model and map at the current scale."""
        self.state.set_model(model)
        self.request_map()

    def open_image(self, image: LoadedImage) -> None:
        """Show a newly opened image, at the scale its letters read best."""
        self.state.set_image(image)
        self.request_auto_scale()

    def set_transformer(self, transformer: Transformer) -> None:
        """Map with new preprocessing (a new generation: a map made before is dropped)."""
        self.state.set_transformer(transformer)
        self.request_map()
        self.state.say(f"preprocessing: {transformer.describe()}", 8000)

    def choose_scale(self, scale: float) -> None:
        self.state.set_scale(scale)
        self.request_map()

    def step_scale(self, direction: int) -> None:
        """The + and - keys: one step up or down."""
        self.choose_scale(stepped(self.state.scale, direction))

    def hold_scale(self, held: bool) -> None:
        """The slider is pressed (no fine pass while it moves) or let go (the fine pass of
        the map it stopped at)."""
        self.state.hold_scale(held)
        if not held:
            self.request_fine()

    def choose_plate(self, index: int, zoom: bool = True, whole: bool = False) -> None:
        """A found plate: zoom to it, and show the map at its scale with its reading. The map
        on screen is kept when it is at that scale and covers the plate; else only the
        plate's neighbourhood is mapped (a whole 12 MP photo at a plate's scale took 30 s),
        or the `whole` image (after the automatic search: the first view of an image)."""
        s = self.state
        s.choose_plate(index, zoom)
        plate = s.plates[index]
        scale = s.set_scale(plate.scale)        # clamped into the range (a large blob picked)
        shown = s.coarse
        if shown is not None and shown.fm.scale == scale and \
                _covers(shown.fm.region, plate.box):
            self.runners.maps.cancel((JobKind.MAP, JobKind.AUTO))
            self._show(jobs.MapResult(shown.fm, plate.reading, shown.note),
                       MapTag(s.generation, scale))
            self.request_fine()
            return
        self.request_map(None if whole else _neighbourhood(
            plate.box, s.image.pixels.shape[:2], s.model.dense.unit.receptive_field, scale))

    def pick_blob(self, name: str) -> None:
        """The Blobs tab's pick, computed at the exact scale of the map on screen when that
        map lacks it; the map itself stays (looking at a panel never changes the map)."""
        state = self.state
        state.pick_blob(name)
        if state.blob_missing():
            fm, dense, pixels = state.fm, state.model.dense, state.image.pixels
            self.runners.maps.submit(
                JobKind.BLOB, lambda: jobs.map_of(dense, pixels, fm.scale, (name,),
                                                  fm.region).blobs, fm)

    # requests to the workers ---------------------------------------------------------------------
    def request_map(self, region: jobs.Region | None = None) -> None:
        """The map at the current scale (of `region` only, when given); a newer request
        replaces a waiting one, and a scale chosen by hand replaces a search for the automatic
        one."""
        s, maps = self.state, self.runners.maps
        scale, dense, pixels, extra = s.scale, s.model.dense, s.image.pixels, s.extra_blobs()
        height, width = pixels.shape[:2]
        region = None if region in (None, (0, 0, width, height)) else region
        maps.cancel((JobKind.AUTO, JobKind.BLOB, JobKind.FINE))
        maps.submit(JobKind.MAP, lambda: jobs.compute_map(dense, pixels, scale, extra, region),
                    MapTag(s.generation, scale))
        s.say(f"computing the dense map at scale {scale:g}...")

    def request_auto_scale(self) -> None:
        """The map at the scale where the letters read best, searched on the worker (a sweep
        of passes, each a chance to cancel). Without a plate reader, or for a model that reads
        no plates: a map at `jobs.opening_scale`."""
        s, maps = self.state, self.runners.maps
        dense, pixels, extra, stop = s.model.dense, s.image.pixels, s.extra_blobs(), \
            maps.should_stop
        if jobs.plate_reader(dense.labels) is None:
            s.set_scale(jobs.opening_scale(dense, pixels.shape))
            self.request_map()
            return
        maps.cancel((JobKind.MAP, JobKind.BLOB, JobKind.FINE, JobKind.PLATES))
        maps.submit(JobKind.AUTO, lambda: jobs.auto_map(dense, pixels, stop, extra),
                    MapTag(s.generation, s.scale))
        s.say("looking for the scale at which the letters fit the net...")

    def request_plates(self, x: int = 0, y: int = 0, w: int = 0, h: int = 0) -> None:
        """Find the plates in a region of the image (none: the whole image) on the worker: a
        pyramid of passes with progress, each a chance to cancel. A region reaching outside
        the image is cut to it."""
        s, maps = self.state, self.runners.maps
        if jobs.plate_reader(s.model.dense.labels) is None:
            s.say(f"no plate search: {s.model.label} has no plate labels", 8000)
            return
        height, width = s.image.pixels.shape[:2]
        w, h = (w, h) if w and h else (width, height)
        x0, y0 = max(0, x), max(0, y)
        region = (x0, y0, min(width, x + w) - x0, min(height, y + h) - y0)
        if min(region[2:]) < 1:
            return
        dense, pixels, stop, progress = s.model.dense, s.image.pixels, maps.should_stop, \
            self.plates_progress
        whole = region == (0, 0, width, height)
        s.set_region(None if whole else region)
        maps.submit(JobKind.PLATES,
                    lambda: jobs.find_plates(dense, pixels, region, stop, progress),
                    PlatesTag(s.generation, not whole))
        s.say("looking for plates: rows of letters at several scales...")

    def request_check(self) -> None:
        """Equivalence and dense-versus-windows timing at the current scale, on the slow worker."""
        s, slow = self.state, self.runners.slow
        model, pixels, scale, stop = s.model, s.image.pixels, s.scale, slow.should_stop
        s.start_check()
        self._check_tag = MapTag(s.generation, scale)
        slow.submit(JobKind.SURGERY, lambda: jobs.check_surgery(model, pixels, scale, stop),
                    self._check_tag)

    def set_fine(self, on: bool) -> None:
        """Follow each coarse map with the fine one (on), or go back to the coarse map (off)."""
        s = self.state
        s.set_fine(on)
        if on:
            self.request_fine()
            return
        self.runners.maps.cancel((JobKind.FINE,))
        if fine.is_fine(s.result) and s.coarse is not None:
            self._show(s.coarse)

    def request_fine(self) -> None:
        """The fine map of the coarse map on screen, unless the scale is being dragged (the
        release asks again) or it is already shown."""
        s = self.state
        coarse = s.coarse
        if not s.fine_on or coarse is None or fine.is_fine(s.result) or fine.is_fine(coarse) \
                or s.scale_held:
            return
        dense, pixels, extra = s.model.dense, s.image.pixels, s.extra_blobs()
        self.runners.maps.submit(
            JobKind.FINE, lambda: fine.fine_map(dense, pixels, coarse.fm.scale, extra, coarse),
            MapTag(s.generation, coarse.fm.scale))

    def request_tiles(self, height: int) -> None:
        """The conv1 tiles of the map on screen, `height` pixels tall, on the panels worker."""
        s = self.state
        fm, kernels = s.fm, s.conv1_kernels()
        if fm is None or fm.conv1 is None or kernels is None:
            return
        self.runners.panels.submit(
            JobKind.TILES, lambda: pictures.conv1_pictures(kernels, fm.conv1, height),
            (fm, s.model.dense.first_conv, kernels))

    def explain_letter(self, index: int) -> None:
        """ "Why <letter> here" for a letter card of the reading on screen."""
        reading = self.state.result.reading if self.state.result is not None else None
        if reading is None or not 0 <= index < len(reading.letters):
            return
        letter = reading.letters[index]
        x, y, w, h = letter.box
        self.explain(jobs.ExplainRequest((x + w / 2, y + h / 2), letter.label))

    def explain_hovered(self) -> None:
        """ "Why <class> here" for the hovered cell: the channel picked, else its best class."""
        s = self.state
        if s.fm is None or s.cell is None:
            s.say("hover a cell of the map, then press E to see why it says its class", 8000)
            return
        x, y, w, h = s.fm.geometry.cell_window(*s.cell)
        self.explain(jobs.ExplainRequest((x + w / 2, y + h / 2), s.channel))

    def explain_versus(self, label: str | None) -> None:
        """Explain the cell on screen against a runner-up ("why H and not W"); None: alone."""
        asked = self.state.explain_request
        if asked is not None and asked.versus != label:
            shown = self.state.explanation
            label_now = asked.label or (shown.label if shown is not None else None)
            self.explain(jobs.ExplainRequest(asked.point, label_now, label))

    def explain(self, request: jobs.ExplainRequest | None = None) -> None:
        """Explain `request` (None: the standing one, again for a new map) on the panels
        worker, at the scale of the map on screen."""
        s = self.state
        if request is not None:
            s.ask_explain(request)
        request = s.explain_request
        if request is None or s.fm is None:
            return
        dense, pixels, scale = s.model.dense, s.image.pixels, s.fm.scale
        self.runners.panels.submit(
            JobKind.EXPLAIN, lambda: jobs.explain_cell(dense, pixels, scale, request),
            (s.generation, request))
        s.say("explaining the cell: gradients, occlusion, integrated gradients...")

    def save(self, write: Callable[[], Any], path: Path) -> None:
        """Write a file on the saving worker (the maps of a 12 MP photo take seconds)."""
        self.runners.saving.submit(JobKind.SAVE, write, path)
        self.state.say(f"saving {path}...")

    def cancel(self, background: bool = True) -> list[JobKind]:
        """Stop what runs and go idle at once; returns what was stopped.

        `background=False` (Esc) stops only what the user waits for, not the surgery timing
        that starts on its own. A pass already inside an engine cannot be interrupted: its
        result is dropped when it returns. The scale goes back to the map on screen's.
        """
        r, s = self.runners, self.state
        stopped = [JobKind(k) for k in r.maps.cancel() + (r.slow.cancel() if background else [])]
        if not stopped:
            return []
        if JobKind.SURGERY in stopped:
            s.stop_check(None)
        if JobKind.PLATES in stopped:
            s.set_region(None)
        if JobKind.FINE in stopped and s.fine_on:
            s.set_fine(False)       # the toggle shows what is on screen: the coarse map
        if s.fm is not None:
            s.set_scale(s.fm.scale)
        s.say("cancelled: " + ", ".join(kind.doing for kind in stopped), 8000)
        return stopped

    # answers -------------------------------------------------------------------------------------
    def job_done(self, kind: str, tag: Any, result: Any) -> None:
        """A worker's result; the handler of its kind drops it when it is stale."""
        known = _kind(kind)
        if known in self._done:
            self._done[known](known, tag, result)

    def job_failed(self, kind: str, tag: Any, message: str) -> None:
        known = _kind(kind)
        if known in self._failed:
            self._failed[known](known, tag, message)

    def _current(self, tag: MapTag | PlatesTag) -> bool:
        return tag.generation == self.state.generation

    def _show(self, result: MapResult, tag: MapTag | None = None, auto: bool = False) -> None:
        self.state.show_result(result, tag, auto)
        self.explain()                  # the standing "why" follows the map on screen
        if self.auto_check and self.state.checked_generation != self.state.generation:
            self.request_check()

    def _map_done(self, kind: JobKind, tag: MapTag, result: MapResult) -> None:
        """A coarse map: shown, then followed by its fine map and, at the automatic scale,
        by the search for plates in the image."""
        if not self._current(tag):
            return
        auto = kind is JobKind.AUTO
        if auto:
            self.state.set_scale(result.fm.scale)
        self._show(self.state.plate_reading(result), tag, auto)
        self.request_fine()
        if auto:
            self.request_plates()

    def _fine_done(self, kind: JobKind, tag: MapTag, result: MapResult) -> None:
        s = self.state
        if s.fine_on and self._current(tag) and s.coarse is not None and \
                tag.scale == s.coarse.fm.scale:
            self._show(result)

    def _blob_done(self, kind: JobKind, fm: Any, blobs: dict) -> None:
        self.state.add_blobs(fm, blobs)

    def _plates_done(self, kind: JobKind, tag: PlatesTag, photo: locate.PhotoReading) -> None:
        """Draw the found plates. The best one is chosen when the user asked for a region, or
        when it is a plate in a photo, not the image itself (a crop keeps the map it has)."""
        s = self.state
        if not self._current(tag):
            return
        s.set_plates(photo.plates)
        best = photo.best
        if best is None:
            s.say("no plate found", 8000)
            return
        height, width = s.image.pixels.shape[:2]
        whole = locate.crop_around(best.box, (height, width)) == (0, 0, width, height)
        if tag.region or not whole:
            self.choose_plate(0, zoom=tag.region, whole=not tag.region)
        else:
            s.choose_plate(0)

    def _check_done(self, kind: JobKind, tag: MapTag, check: jobs.SurgeryCheck) -> None:
        if tag is self._check_tag:      # an older timing (another image) is not shown
            self.state.set_check(check)

    def _tiles_done(self, kind: JobKind, tag: tuple, drawn: list) -> None:
        fm, blob, kernels = tag
        self.state.set_tiles(Tiles(fm, blob, kernels, drawn))

    def _explain_done(self, kind: JobKind, tag: tuple, explanation: Any) -> None:
        generation, request = tag
        if generation == self.state.generation:
            self.state.set_explanation(request, explanation)
            self.state.say(f"why {explanation.label} here: done", 4000)

    def _explain_failed(self, kind: JobKind, tag: tuple, message: str) -> None:
        self.state.say(f"cannot explain the cell: {message}", 8000)

    def _save_done(self, kind: JobKind, path: Path, result: Any) -> None:
        self.state.file_saved(path)

    def _map_failed(self, kind: JobKind, tag: MapTag, message: str) -> None:
        """The map asked for cannot be made; an automatic scale that failed with nothing on
        screen is followed by a map at the current scale."""
        s = self.state
        if not self._current(tag):
            return
        s.say(f"error: {message}")
        retrying = kind is JobKind.AUTO and s.fm is None
        s.fail(kind, message, retrying)
        if retrying:
            self.request_map()

    def _fine_failed(self, kind: JobKind, tag: MapTag, message: str) -> None:
        self.state.say(f"no fine map: {message}", 8000)      # the coarse map stays

    def _plates_failed(self, kind: JobKind, tag: PlatesTag, message: str) -> None:
        if self._current(tag):
            self.state.set_region(None)
            self.state.say(f"error: {message}")
            self.state.fail(kind, message)

    def _check_failed(self, kind: JobKind, tag: MapTag, message: str) -> None:
        if tag is self._check_tag:
            self.state.stop_check(message)

    def _save_failed(self, kind: JobKind, path: Path, message: str) -> None:
        self.state.alert(f"could not save {path}: {message}")


def _neighbourhood(box: tuple, shape: tuple[int, int], window: tuple[int, int],
                   scale: float) -> jobs.Region:
    """The crop `read` reads a plate in (`locate.crop_around`), grown about its centre to hold
    at least one window of the net at `scale`, and kept inside the image."""
    x, y, w, h = locate.crop_around(box, shape)
    grown = []
    for start, size, need, limit in ((x, w, window[1], shape[1]), (y, h, window[0], shape[0])):
        size2 = min(limit, max(size, math.ceil(need / scale) + 2))
        start2 = min(max(0, start - (size2 - size) // 2), limit - size2)
        grown.append((start2, size2))
    (x, w), (y, h) = grown
    return (x, y, w, h)


def _covers(region: jobs.Region | None, box: tuple) -> bool:
    """A map of `region` (None: the whole image) covers `box`."""
    if region is None:
        return True
    x, y, w, h = region
    return x <= box[0] and y <= box[1] and box[0] + box[2] <= x + w and box[1] + box[3] <= y + h


def _kind(kind: str) -> JobKind | None:
    """The kind of a worker's answer (its Qt signal carries it as text); None for a kind
    another part of the viewer handles."""
    try:
        return JobKind(kind)
    except ValueError:
        return None
