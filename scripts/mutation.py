"""`make mutation`: mutmut over the core modules, each with the tests that exercise it.

    python scripts/mutation.py [MODULE ...]     # all of MODULES by default
    python scripts/mutation.py --survivors MODULE ...   # retest only last run's survivors

mutmut reads its settings from the working folder and mutates a copy of the sources in
`mutants/`, so each module runs in its own scratch folder `out/mutation/NAME/` (links to
viewer/, tests/ and bench/, a generated pyproject.toml), under `nice -n 19`, with
MUTATION_JOBS workers (1 by default: the machine is shared). Results are kept there, so a
second run only tests what changed. `out/mutation/report.md` gets the score per module
(killed / (all - equivalent)) and every surviving mutant with its diff; the survivors
`tests/mutation_equivalent.txt` lists as equivalent are shown apart with their reason.
Timings and the last scores are in docs/mutation.md.
"""
from __future__ import annotations

import ast
import difflib
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "mutation"
EQUIVALENT = ROOT / "tests" / "mutation_equivalent.txt"
MUTMUT = Path(sys.executable).parent / "mutmut"

# module -> (files to mutate, pytest arguments choosing the fixed tests that exercise them).
# Hypothesis tests are left out: their random examples would make a mutant's fate differ
# from run to run. test_bad_inputs is cut to the tests about the module (-k: its words must
# not be part of "test_bad_inputs.py", which -k matches too).
MODULES: dict[str, tuple[list[str], list[str]]] = {
    # Modules that left one of these in the layout change stay in its group: model_io with
    # net/weights (loading and checking weights), surgery with its check, featuremap with its
    # memory planning.
    "model_io": (["viewer/caffe/model_io.py", "viewer/net/weights.py"],
                 ["tests/test_model_io.py", "tests/test_netgraph.py", "tests/test_surgery.py"]),
    "netgraph": (["viewer/net/netgraph.py"], ["tests/test_netgraph.py", "tests/test_model_io.py"]),
    # ONE Geometry: netgraph's Field and featuremap's Geometry, tested with both
    "geometry": (["viewer/net/geometry.py"],
                 ["tests/test_geometry.py", "tests/test_netgraph.py", "tests/test_featuremap.py",
                  "tests/test_surgery.py", "tests/test_reading.py"]),
    "surgery": (["viewer/surgery/convolutional.py", "viewer/surgery/verify.py"],
                ["tests/test_surgery.py"]),
    "featuremap": (["viewer/maps/featuremap.py", "viewer/maps/planning.py"],
                   ["tests/test_featuremap.py", "tests/test_surgery.py",
                    "tests/test_reading.py"]),
    "reading": (["viewer/plates/reading.py", "viewer/plates/formats.py"],
                ["tests/test_reading.py", "tests/test_plate_formats.py"]),
    "images": (["viewer/maps/images.py"], ["tests/test_images.py", "tests/test_featuremap.py",
                                      "tests/test_bad_inputs.py",
                                      "-k", "featuremap or image or scale or photo or pixel"]),
    "safe_write": (["viewer/files/safe_write.py"],
                   ["tests/test_safe_write.py", "tests/test_bad_inputs.py", "-k",
                    "export or overwrite or linked or read_only or interrupted or "
                    "system_folder or output_folder or byte_for_byte or screenshot or "
                    "test_safe_write"]),
    "lmdb_io": (["viewer/caffe/lmdb_io.py"],
                ["tests/test_dataset_lmdb_io.py", "tests/test_hostile_inputs.py",
                 "tests/test_bad_inputs.py", "-k", "lmdb or datum or record or dataset"]),
    # without the 120 MB streaming test and the CLI's ONNX round trip, which time out under
    # mutation on a busy machine: the direct ONNX export tests check the same metadata
    "export": (["viewer/maps/export.py"], ["tests/test_export.py", "-k",
                                      "not streams_to_disk and not runs_alone"]),
    # The engines' conversion code, with the engine tests: each mutant runs only the tests
    # that reach its function, so the other engines' tests cost nothing.
    "opencv_engine": (["viewer/engines/opencv_engine.py"], ["tests/test_engines.py"]),
    "onnx_graph": (["viewer/convert/onnx_graph.py"], ["tests/test_engines.py"]),
}
# Modules mutated in part: the mutants run and counted are those whose names match one of
# these patterns (fnmatch). mutmut reruns every named mutant, so these modules start afresh
# each time. None since the ONNX conversion left onnx_engine for convert/onnx_graph.
ONLY: dict[str, list[str]] = {}
STATUS = re.compile(r"^\s+(\S+__mutmut_\d+): (.+)$")


def equivalent_mutants() -> dict[str, str]:
    """Mutant name -> why it cannot be killed, from the checked-in list."""
    found = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition(" ")
            found[name] = reason.strip()
    return found


def scratch_folder(name: str) -> Path:
    """out/mutation/NAME with links to the sources and a pyproject.toml for this module."""
    files, tests = MODULES[name]
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    for link in ("viewer", "tests", "bench", "main.py", "setup.cfg"):
        if not (folder / link).exists():
            (folder / link).symlink_to(ROOT / link)
    quoted = lambda items: ", ".join(f'"{item}"' for item in items)  # noqa: E731
    (folder / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["viewer"]\n'
        f"only_mutate = [{quoted(files)}]\n"
        # viewer/models and viewer/resources are links, which mutmut's copy does not follow
        'also_copy = ["viewer/models", "viewer/resources", "bench", "main.py"]\n'
        f"pytest_add_cli_args_test_selection = [{quoted(tests)}]\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
        # a mutant that loops forever is stopped after 6x its tests' CPU time (mutmut: 30x)
        "timeout_multiplier = 3.0\n")
    return folder


def run_module(name: str, jobs: int, again: bool = False) -> float | None:
    """Run mutmut for one module in its scratch folder (its output in mutmut.log there);
    returns the wall time in seconds, or None when mutmut failed (a red test, say).

    With `again`, only the mutants that survived the last run (but those listed as
    equivalent) are tested again: mutmut keeps the other verdicts, and a test added since
    reaches a survivor only if the survivor is named."""
    folder = scratch_folder(name)
    mutants = ONLY.get(name, [])
    if again and (folder / "mutants").exists():
        equivalent = equivalent_mutants()
        mutants = [m for m, v in statuses(name).items()
                   if v not in ("killed", "timeout") and m not in equivalent]
        if not mutants:
            return 0.0
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONDONTWRITEBYTECODE="1")
    start = time.monotonic()
    with open(folder / "mutmut.log", "w") as log:
        done = subprocess.run(["nice", "-n", "19", str(MUTMUT), "run", "--max-children",
                               str(jobs), *mutants], cwd=folder, env=env,
                              stdout=log, stderr=log)
    return time.monotonic() - start if done.returncode == 0 else None


def statuses(name: str) -> dict[str, str]:
    """Mutant name -> mutmut's verdict (killed, survived, timeout, no tests, ...), for the
    mutants ONLY keeps."""
    out = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=OUT / name,
                         capture_output=True, text=True, check=True).stdout
    patterns = ONLY.get(name, ["*"])
    return {m[1]: m[2] for m in map(STATUS.match, out.splitlines())
            if m and any(fnmatch.fnmatchcase(m[1], p) for p in patterns)}


def function_sources(name: str) -> dict[str, str]:
    """Every function of the mutated copies in out/mutation/NAME/mutants, by name: the
    original of each function and each of its mutants (reading them is much faster than one
    `mutmut show` a survivor)."""
    sources = {}
    for path in MODULES[name][0]:
        text = (OUT / name / "mutants" / path).read_text()
        lines = text.splitlines(True)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and "__mutmut_" in node.name:
                source = textwrap.dedent("".join(lines[node.lineno - 1:node.end_lineno]))
                sources[node.name] = source.replace(node.name, "", 1)  # same first line
    return sources


def diff_of(mutant: str, sources: dict[str, str]) -> str:
    """The mutant's change as a diff of its function against the original."""
    function = mutant.rsplit(".", 1)[1]
    original = function.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    diff = difflib.unified_diff(sources[original].splitlines(True),
                                sources[function].splitlines(True), n=0)
    return "".join(list(diff)[2:])                 # without the ---/+++ file header


def module_report(name: str, seconds: float, equivalent: dict[str, str]) -> tuple[
        str, list[str]]:
    """The module's summary row and the report sections of its survivors."""
    verdicts = statuses(name)
    killed = sum(v in ("killed", "timeout") for v in verdicts.values())
    same = [m for m, v in verdicts.items() if v != "killed" and m in equivalent]
    live = [m for m, v in verdicts.items() if v not in ("killed", "timeout") and m not in same]
    counted = len(verdicts) - len(same)
    score = killed / counted if counted else 1.0
    took = f"{seconds / 60:.1f} min"
    row = f"| {name} | {len(verdicts)} | {killed} | {len(same)} | {len(live)} | {score:.1%} | {took} |"
    sources = function_sources(name)
    sections = [f"### {m} ({verdicts[m]})\n\n```diff\n{diff_of(m, sources)}```\n" for m in live]
    sections += [f"- `{m}` equivalent: {equivalent[m]}" for m in same]
    return row, sections


def main(argv: list[str]) -> int:
    again = "--survivors" in argv
    names = [a for a in argv if a != "--survivors"] or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"error: unknown module {', '.join(unknown)}; choose from {', '.join(MODULES)}",
              file=sys.stderr)
        return 2
    if not MUTMUT.exists():
        print(f"error: {MUTMUT} not found: pip install 'mutmut==3.8.1'", file=sys.stderr)
        return 2
    jobs = int(os.environ.get("MUTATION_JOBS", "1"))
    equivalent = equivalent_mutants()
    rows, sections = [], []
    for name in names:
        seconds = run_module(name, jobs, again)
        if seconds is None:
            row, survivors = f"| {name} | mutmut failed: see {OUT / name / 'mutmut.log'} |", []
        else:
            row, survivors = module_report(name, seconds, equivalent)
        print(row, flush=True)
        rows.append(row)
        sections += [f"\n## {name}\n", *survivors] if survivors else []
    report = ["# Mutation report\n", "Score = (killed + timeout) / (mutants - equivalent).\n",
              "| module | mutants | killed | equivalent | survived | score | time |",
              "|---|---|---|---|---|---|---|", *rows, *sections]
    (OUT / "report.md").write_text("\n".join(report) + "\n")
    print(f"report: {OUT / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
