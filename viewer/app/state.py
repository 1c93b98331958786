"""The viewer's state without Qt: what is loaded, the map on screen, what is picked, and the
events that tell the widgets it changed.

One map, one scale: every panel shows `result` at `scale`, with the picked channel, filter,
letter, blob and hovered cell. The state changes only through its methods; each checks its
values (a channel of the model, a filter of conv1, a scale in range) and emits the events of
what changed. It starts no work: the controller (`viewer.app.controller`) asks the workers
and hands their results here. A new model or image bumps `generation`, which tags requests,
so an answer to an older one is known for stale.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from viewer.app.events import Event
from viewer.app.jobs import (ExplainRequest, JobKind, MapResult, MapTag, SurgeryCheck,
                             region_pixels)
from viewer.maps.attribution import Explanation
from viewer.app.layers import MapLayer, layer_for
from viewer.app.scale import ScaleRange, scale_limit_text, scale_range
from viewer.app.session import LoadedImage, LoadedModel
from viewer.maps.featuremap import FeatureMap
from viewer.maps.preprocess import Transformer
from viewer.plates.locate import FoundPlate


@dataclass
class ViewOptions:
    """How the heatmap is drawn; saved on exit and restored on start."""

    opacity: float = 0.6
    colormap: str = "inferno"
    raw_scores: bool = False


@dataclass
class Tiles:
    """The conv1 panel's pictures of one map (drawn on a worker after the map is shown)."""

    fm: FeatureMap
    blob: str
    kernels: np.ndarray
    pictures: list[np.ndarray]


def _event(name: str) -> Any:
    """A dataclass field holding a new `Event` of that name."""
    return field(default_factory=lambda: Event(name))


@dataclass
class StateEvents:
    """What the widgets follow; each is emitted once the state has changed (arguments after
    the colon)."""

    model: Event = _event("model")              # LoadedModel: picks already checked against it
    image: Event = _event("image")              # LoadedImage: its map is yet to come
    scale: Event = _event("scale")              # float: the scale the controls show
    scale_range: Event = _event("scale_range")  # ScaleRange
    map: Event = _event("map")                  # MapResult: a new map on screen
    layer: Event = _event("layer")              # -: the layer over the plate is another one
    pick: Event = _event("pick")                # -: channel, filter or letter
    options: Event = _event("options")          # ViewOptions
    cell: Event = _event("cell")                # (i, j) or None: the hovered cell
    blob: Event = _event("blob")                # -: the Blobs tab's pick, or its values came
    plates: Event = _event("plates")            # list[FoundPlate]: none chosen yet
    region: Event = _event("region")            # (x, y, w, h) searched for plates, or None
    plate_chosen: Event = _event("plate_chosen")    # index, zoom to it
    fine: Event = _event("fine")                # bool: follow each map with the fine one
    tiles: Event = _event("tiles")              # Tiles of the map on screen
    check_started: Event = _event("check_started")  # -: the surgery is being timed
    check_done: Event = _event("check_done")        # SurgeryCheck
    check_stopped: Event = _event("check_stopped")  # message, or None when cancelled
    failed: Event = _event("failed")            # JobKind, message, retrying
    status: Event = _event("status")            # message, milliseconds (0: until replaced)
    alert: Event = _event("alert")              # message for a dialog
    saved: Event = _event("saved")              # Path of a file written in the background
    explained: Event = _event("explained")      # Explanation of the asked cell, or None


class ViewerState:
    """The model, image and map on screen, the scale, the picks and the found plates.

    Built on a loaded model and image (generation 2: one for each); `channel` is the one the
    command line asked for.
    """

    def __init__(self, model: LoadedModel, image: LoadedImage, channel: str | None = None,
                 options: ViewOptions | None = None) -> None:
        self.events = StateEvents()
        self.options = options or ViewOptions()
        self.generation = 0
        self.checked_generation = -1        # the generation whose surgery was timed last
        self.scale, self.scale_range = 1.0, ScaleRange()
        self.scale_held = False             # the slider is being dragged: no fine pass yet
        self.result: MapResult | None = None    # the map on screen
        self.coarse: MapResult | None = None    # the last map at the net's own stride
        self.shown_tag: MapTag | None = None    # the request the map on screen answers
        self.auto_shown = False             # the map on screen is at the automatic scale
        self.fine_on = False
        self.channel, self.filter, self.letter = channel, None, None
        self.cell: tuple[int, int] | None = None
        self.blob = ""
        self.plates: list[FoundPlate] = []
        self.chosen_plate: int | None = None
        self.region: tuple[int, int, int, int] | None = None    # the Shift-drag being read
        self.check: SurgeryCheck | None = None
        self.tiles: Tiles | None = None
        self.explain_request: ExplainRequest | None = None   # "Why <class> here", followed
        self.explanation: Explanation | None = None          # by each map, and its answer
        self._layer: tuple | None = None    # (fm, dense, picks, MapLayer) last computed
        self.image = image
        self.set_model(model)
        self.set_image(image)

    # what is loaded ------------------------------------------------------------------------------
    @property
    def fm(self) -> FeatureMap | None:
        return self.result.fm if self.result is not None else None

    def set_model(self, model: LoadedModel) -> None:
        """Another model: a new generation; the channel stays if the model has it, the blob
        if the net has it (else its scores); filter and letter are let go."""
        self.model, dense = model, model.dense
        self.generation += 1
        if self.channel not in dense.labels:
            self.channel = None
        self.filter = self.letter = None
        names, current = dense.engine.blob_names, self.blob or dense.score_blob
        self.blob = current if current in names else (names[0] if names else "")
        self.events.model.emit(model)
        self.set_plates([])                 # the old model's plates: another model reads anew
        self.set_region(None)
        self._update_range()
        self.events.pick.emit()

    def set_image(self, image: LoadedImage) -> None:
        """Another image: a new generation, and nothing of the last image's map is kept
        (map, hovered cell, letter, found plates, conv1 tiles)."""
        self.image = image
        self.generation += 1
        self.result = self.coarse = None
        self.cell = self.letter = self.chosen_plate = self.tiles = None
        self.plates, self.region = [], None
        self.explain_request = self.explanation = None
        self.events.image.emit(image)
        self._update_range()
        self.events.pick.emit()

    def set_transformer(self, transformer: Transformer) -> None:
        """New preprocessing for the model: a new generation, so a map made before is stale."""
        dense = self.model.dense
        dense.settings = dense.settings.with_transformer(transformer)
        timed = self.checked_generation == self.generation
        self.generation += 1
        if timed:       # preprocessing does not change the speed: no timing again on its own
            self.checked_generation = self.generation

    # the scale -----------------------------------------------------------------------------------
    def set_scale(self, scale: float) -> float:
        """The scale of the next map, clamped into `scale_range`; returns it."""
        self.scale = self.scale_range.clamp(scale)
        self.events.scale.emit(self.scale)
        return self.scale

    def hold_scale(self, held: bool) -> None:
        """The slider is being dragged (True) or was let go."""
        self.scale_held = held

    def _update_range(self) -> None:
        """Scales from one window of the net to the largest pass that fits in memory (a large
        picked blob lowers it); the scale is clamped into the new range."""
        dense, shape = self.model.dense, self.image.pixels.shape[:2]
        limit = dense.planner.max_scale(shape, self.extra_blobs())
        reason = scale_limit_text(limit, shape, [e.name for e in dense.planner.memory_engines()])
        self.scale_range = scale_range(dense.planner.min_scale(shape), limit, reason)
        self.events.scale_range.emit(self.scale_range)
        self.set_scale(self.scale)

    # the map on screen ---------------------------------------------------------------------------
    def show_result(self, result: MapResult, tag: MapTag | None = None,
                    auto: bool = False) -> None:
        """Put `result` on screen. With the `tag` of its request it is a coarse map (map or
        automatic scale) and becomes `coarse`; without, a fine map or the coarse one again.
        A hovered cell off the new map is let go, and a letter of another reading."""
        if tag is not None:
            self.shown_tag, self.auto_shown, self.coarse = tag, auto, result
        if self.result is None or result.reading is not self.result.reading:
            self.letter = None
        self.result = result
        if self.cell is not None and not _inside(result.fm, self.cell):
            self.cell = None
        self.events.map.emit(result)

    @property
    def layer(self) -> MapLayer | None:
        """What goes over the plate for the map, channel, filter and raw switch (computed
        once for each of them: the view, the summary and the export share it)."""
        fm, dense = self.fm, self.model.dense
        if fm is None:
            return None
        picks = (self.channel, self.filter, self.options.raw_scores)
        if self._layer is None or self._layer[0] is not fm or self._layer[1] is not dense or \
                self._layer[2] != picks:
            self._layer = (fm, dense, picks, layer_for(fm, dense, *picks))
        return self._layer[3]

    def conv1_kernels(self) -> np.ndarray | None:
        """The first convolution's kernels (K x C x kh x kw), None for a net without one."""
        dense = self.model.dense
        return dense.engine.params[dense.first_conv][0] if dense.first_conv else None

    # picks ---------------------------------------------------------------------------------------
    def set_channel(self, label: str | None) -> None:
        """Show a class channel of the model (None: the best class), instead of any conv1
        filter overlay or letter."""
        if label is not None and label not in self.model.dense.labels:
            raise ValueError(f"'{label}' is no class of {self.model.label}")
        self._pick(label, None, None)

    def select_letter(self, index: int) -> None:
        """A letter of the reading on screen: its channel, and its box highlighted."""
        reading = self.result.reading if self.result is not None else None
        letters = reading.letters if reading is not None else []
        if not 0 <= index < len(letters):
            raise IndexError(f"no letter {index}: the reading has {len(letters)}")
        self._pick(letters[index].label, None, index)

    def select_filter(self, index: int | None) -> None:
        """Overlay conv1 filter `index` of the map on screen (None or -1: back to the class
        channel)."""
        index = None if index is None or index < 0 else index
        conv1 = self.fm.conv1 if self.fm is not None else None
        count = 0 if conv1 is None else len(conv1)
        if index is not None and index >= count:
            raise IndexError(f"no conv1 filter {index}: the map has {count}")
        self._pick(self.channel, index, self.letter)

    def _pick(self, channel: str | None, filter_index: int | None, letter: int | None) -> None:
        self.channel, self.filter, self.letter = channel, filter_index, letter
        self.events.pick.emit()
        self.events.layer.emit()

    def set_raw(self, raw: bool) -> None:
        """Raw scores instead of probabilities for a class channel."""
        if raw != self.options.raw_scores:
            self.options.raw_scores = raw
            self.events.options.emit(self.options)
            self.events.layer.emit()

    def set_opacity(self, opacity: float) -> None:
        if not 0.0 <= opacity <= 1.0:
            raise ValueError(f"opacity {opacity} is not between 0 and 1")
        self.options.opacity = opacity
        self.events.options.emit(self.options)

    def set_colormap(self, name: str) -> None:
        self.options.colormap = name
        self.events.options.emit(self.options)

    # the hovered cell ----------------------------------------------------------------------------
    def hover_at(self, x: float, y: float) -> None:
        """The cell whose block holds image point (x, y), if the map has it."""
        if self.fm is not None:
            self.hover_cell(*self.fm.geometry.cell_at(x, y))

    def hover_cell(self, i: int, j: int) -> None:
        fm = self.fm
        self.cell = (i, j) if fm is not None and _inside(fm, (i, j)) else None
        self.events.cell.emit(self.cell)

    def leave(self) -> None:
        """The cursor left the plate."""
        self.cell = None
        self.events.cell.emit(None)

    def hover_example(self) -> None:
        """Hover the first read letter, or the plate's centre (screenshots)."""
        reading = self.result.reading if self.result is not None else None
        letters = getattr(reading, "letters", None)
        if letters:     # by its box: a found plate's letters count cells in its own map
            x, y, w, h = letters[0].box
            self.hover_at(x + w / 2, y + h / 2)
        else:
            h, w = self.image.pixels.shape[:2]
            self.hover_at(w / 2, h / 2)

    # the Blobs tab -------------------------------------------------------------------------------
    def pick_blob(self, name: str) -> None:
        """Show blob `name` of the map on screen (later maps carry it); a large blob lowers
        the largest scale that fits."""
        if name not in self.model.dense.engine.blob_names:
            raise ValueError(f"'{name}' is no blob of {self.model.label}")
        self.blob = name
        self._update_range()
        self.events.blob.emit()

    def extra_blobs(self) -> tuple[str, ...]:
        """The picked blob, which each pass also returns (the input is made again: cheap)."""
        return (self.blob,) if self.blob and self.blob != self.model.dense.engine.input_name \
            else ()

    def blob_missing(self) -> bool:
        """The map on screen lacks the picked blob: a pass at its scale must make it."""
        fm = self.fm
        return fm is not None and bool(self.extra_blobs()) and self.blob not in fm.blobs

    def add_blobs(self, fm: FeatureMap, blobs: dict[str, np.ndarray]) -> None:
        """Blobs computed for `fm` afterwards; dropped unless `fm` is still on screen."""
        if fm is self.fm:
            fm.blobs.update(blobs)
            self.events.blob.emit()

    def blob_values(self) -> tuple[np.ndarray | None, list[str] | None]:
        """The picked blob's values on the map on screen (None: not computed yet), and the
        class names when it has one channel per class (scores, probabilities)."""
        fm, dense = self.fm, self.model.dense
        if fm is None:
            return None, None
        values = dense.prepare(region_pixels(self.image.pixels, fm.region), fm.scale)[0] \
            if self.blob == dense.engine.input_name else fm.blobs.get(self.blob)
        classes = values is not None and values.shape == fm.probs.shape
        return values, (fm.labels if classes else None)

    # found plates --------------------------------------------------------------------------------
    def set_plates(self, plates: list[FoundPlate]) -> None:
        self.plates, self.chosen_plate = list(plates), None
        self.events.plates.emit(self.plates)

    def set_region(self, region: tuple[int, int, int, int] | None) -> None:
        """The region of the image being searched for plates (None: no region shown)."""
        self.region = region
        self.events.region.emit(region)

    def choose_plate(self, index: int, zoom: bool = False) -> None:
        """Mark found plate `index` as the one read (`zoom`: and bring it into view)."""
        if not 0 <= index < len(self.plates):
            raise IndexError(f"no plate {index}: {len(self.plates)} were found")
        self.chosen_plate = index
        self.events.plate_chosen.emit(index, zoom)

    def plate_reading(self, result: MapResult) -> MapResult:
        """A map at the chosen plate's scale reads as that plate: the Reads strip follows the
        plate, not the whole photo read as one."""
        chosen = self.chosen_plate
        if chosen is not None and self.plates[chosen].scale == result.fm.scale:
            result.reading = self.plates[chosen].reading
        return result

    # the rest the widgets show -------------------------------------------------------------------
    def set_fine(self, on: bool) -> None:
        self.fine_on = on
        self.events.fine.emit(on)

    def start_check(self) -> None:
        self.checked_generation = self.generation
        self.events.check_started.emit()

    def set_check(self, check: SurgeryCheck) -> None:
        self.check = check
        self.events.check_done.emit(check)

    def stop_check(self, message: str | None) -> None:
        """The timing failed (`message`) or was cancelled (None)."""
        self.events.check_stopped.emit(message)

    def set_tiles(self, tiles: Tiles) -> None:
        """The conv1 pictures, unless a newer map has come meanwhile."""
        if tiles.fm is self.fm:
            self.tiles = tiles
            self.events.tiles.emit(tiles)

    def ask_explain(self, request: ExplainRequest | None) -> None:
        """Explain this cell from now on (None: stop); its answer comes with `set_explanation`."""
        self.explain_request = request
        if request is None:
            self.explanation = None
            self.events.explained.emit(None)

    def set_explanation(self, request: ExplainRequest, explanation: Explanation) -> None:
        """An answer, dropped unless it answers the request still standing."""
        if request == self.explain_request:
            self.explanation = explanation
            self.events.explained.emit(explanation)

    def say(self, message: str, ms: int = 0) -> None:
        """A line for the status bar (`ms` = 0: until the next one)."""
        self.events.status.emit(message, ms)

    def alert(self, message: str) -> None:
        """Something the user must read: a dialog."""
        self.events.alert.emit(message)

    def fail(self, kind: JobKind, message: str, retrying: bool = False) -> None:
        self.events.failed.emit(kind, message, retrying)

    def file_saved(self, path: Path) -> None:
        self.events.saved.emit(path)

    def announce(self) -> None:
        """Emit what every widget shows, so widgets connected after the state was built show
        it as it is."""
        e = self.events
        e.model.emit(self.model)
        e.image.emit(self.image)
        e.scale_range.emit(self.scale_range)
        e.scale.emit(self.scale)
        e.options.emit(self.options)
        e.fine.emit(self.fine_on)
        e.pick.emit()


def _inside(fm: FeatureMap, cell: tuple[int, int]) -> bool:
    _, h, w = fm.probs.shape
    return 0 <= cell[0] < h and 0 <= cell[1] < w
