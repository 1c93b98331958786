"""The house plan holds: the import contract in setup.cfg, no import circles, small modules.

docs/architecture.md explains the layers; these tests keep the code to them, so a wrong-way
import, a circle (deferred imports count) or a module grown past the size we can read fails CI.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
# The one module allowed past MAX_LINES: the plate drawer's tables of styles and marks.
LONG_MODULES = {"viewer/dataset/plates.py"}
MAX_LINES = 500
MAX_WINDOW_LINES = 400


def lint(folder: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the `viewer` package found in `folder`, with folder's setup.cfg."""
    return subprocess.run([str(LINT), "--config", str(folder / "setup.cfg"), "--no-cache"],
                          cwd=folder, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(folder)})


def test_the_import_contract_holds():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_a_wrong_way_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "viewer", tmp_path / "viewer", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    planted = tmp_path / "viewer" / "net" / "netgraph.py"
    planted.write_text(planted.read_text() + "\nfrom viewer.maps import render  # planted\n")
    qt = tmp_path / "viewer" / "maps" / "images.py"
    qt.write_text(qt.read_text() + "\nimport pyqtgraph  # planted\n")
    result = lint(tmp_path)
    assert result.returncode == 1
    assert "Contracts: 1 kept, 2 broken." in result.stdout
    assert "viewer.net is not allowed to import viewer.maps" in result.stdout
    assert "viewer.maps.images -> pyqtgraph" in result.stdout


def import_circles(graph: grimp.ImportGraph) -> list[set[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan's
    strongly connected components over every import, deferred ones included). Recursive: its
    depth is at most the number of modules (about 100), within Python's default limit, which
    other tests rely on (a prototxt nested too deeply must hit it)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = set()
            while not group or module not in group:
                group.add(stack.pop())
            if len(group) > 1:
                circles.append(group)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return circles


def test_no_module_imports_itself_through_others():
    assert import_circles(grimp.build_graph("viewer")) == []


def test_the_circle_finder_finds_a_circle_through_a_deferred_import():
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    graph.add_import(importer="a.z", imported="a.x")
    assert import_circles(graph) == [{"a.x", "a.y", "a.z"}]


def test_modules_stay_small_enough_to_read():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
             for path in sorted((ROOT / "viewer").rglob("*.py")) if "proto" not in path.parts}
    too_long = {name: n for name, n in sizes.items()
                if n > MAX_LINES and name not in LONG_MODULES}
    assert too_long == {}
    assert sizes["viewer/gui/main_window.py"] < MAX_WINDOW_LINES


def test_the_layer_diagram_in_the_docs_is_the_contract():
    """docs/architecture.md's diagram is generated (scripts/architecture.py): a layer or a
    module added, moved or removed without regenerating it fails here."""
    script = ROOT / "scripts" / "architecture.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    block = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           timeout=60, check=True).stdout
    for layer in ("cli", "gui", "app", "maps", "net", "caffe"):
        assert f'L_{layer}["<b>{layer}</b>' in block
    assert "    L_gui --> L_app\n" in block and "PyQt5, pyqtgraph: only in gui." in block
