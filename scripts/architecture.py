"""The layer diagram of docs/architecture.md, made from the import contract in setup.cfg.

The layers come from `[importlinter:contract:layers]` (top to bottom), the packages that only
some layers may use from the `forbidden` contracts, and each layer's modules from the files
under viewer/ (names only, so the diagram changes when the plan does, not with every edit). The output is one Markdown block: a Mermaid flowchart, then the
modules that no layer holds.

    python scripts/architecture.py            print the block
    python scripts/architecture.py --check    exit 1 if docs/architecture.md's block is stale
    python scripts/architecture.py --write    rewrite that block in place

Standard library only, so it runs before the venv exists.
"""
from __future__ import annotations

import argparse
import ast
import configparser
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- layers:begin -->", "<!-- layers:end -->"
PER_LINE = 3  # modules per line inside a layer's box


def read_contracts(setup_cfg: Path) -> tuple[str, list[list[str]], list[list[str]],
                                             dict[str, list[str]]]:
    """The root package; the layers top to bottom, each a list of sibling packages relative to
    the root; the sibling groups that may not import each other (`a | b`, not `a : b`); and
    for each forbidden contract's packages, the layers allowed to use them."""
    config = configparser.ConfigParser()
    config.read(setup_cfg, encoding="utf-8")
    root = config.get("importlinter", "root_package", fallback="viewer")

    def relative(name: str) -> str:
        name = name.strip().strip("()")              # "(viewer.x)": an optional layer
        return name[len(root) + 1:] if name.startswith(root + ".") else name

    lines = [line.strip() for line in
             config.get("importlinter:contract:layers", "layers").splitlines() if line.strip()]
    layers = [[relative(n) for n in re.split(r"[|:]", line) if n.strip()] for line in lines]
    independent = [names for names, line in zip(layers, lines) if "|" in line]
    everyone = [name for layer in layers for name in layer]
    allowed: dict[str, list[str]] = {}
    for section in config.sections():
        if section.startswith("importlinter:contract:") and \
                config.get(section, "type", fallback="") == "forbidden":
            sources = {relative(n) for n in config.get(section, "source_modules").split()}
            packages = ", ".join(config.get(section, "forbidden_modules").split())
            allowed[packages] = [name for name in everyone if name not in sources]
    return root, layers, independent, allowed


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def has_code(path: Path) -> bool:
    """False for an `__init__.py` that holds only its docstring (it says nothing to list)."""
    try:
        body = ast.parse(path.read_text(encoding="utf-8")).body
    except SyntaxError:                     # being edited: list it rather than fail
        return True
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return bool(body)


def modules(package_dir: Path) -> dict[str, int]:
    """Every module file under `package_dir` (symlinked folders and caches skipped), by its
    dotted name relative to the root package, with its line count."""
    found: dict[str, int] = {}
    for folder, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__"
                         and not (Path(folder) / d).is_symlink())
        for name in sorted(files):
            path = Path(folder) / name
            if not name.endswith(".py") or (name == "__init__.py" and not has_code(path)):
                continue
            parts = path.relative_to(package_dir).with_suffix("").parts
            found[".".join(parts)] = line_count(path)
    return found


def owner(module: str, names: list[str]) -> str | None:
    """The layer holding `module` ("cli.batch" is in "cli"; the longest name wins), or None."""
    held = [n for n in names if module == n or module.startswith(n + ".")]
    return max(held, key=len, default=None)


def generate(root_dir: Path = ROOT) -> str:
    """The Markdown block: the Mermaid diagram and the modules outside every layer."""
    root, layers, independent, allowed = read_contracts(root_dir / "setup.cfg")
    names = [name for layer in layers for name in layer]
    found = modules(root_dir / root)
    held: dict[str, dict[str, int]] = {name: {} for name in names}
    outside: dict[str, int] = {}
    for module, lines in found.items():
        layer = owner(module, names)
        if layer is None:
            outside[module] = lines
        else:
            short = module[len(layer) + 1:] or module.rsplit(".", 1)[-1]
            held[layer][short] = lines

    out = ["```mermaid", "flowchart TD"]
    for name in names:
        mods = list(held[name])
        rows = [", ".join(mods[i:i + PER_LINE]) for i in range(0, len(mods), PER_LINE)]
        uses = [f"uses {packages}" for packages, where in allowed.items() if name in where]
        head = f"<b>{name}</b>" if mods else f"<b>{name}</b> (no modules yet)"
        label = "<br/>".join([head, *rows, *(f"<i>{u}</i>" for u in uses)])
        out.append(f'    {node(name)}["{label}"]')
    for upper, lower in zip(layers, layers[1:]):
        for a in upper:
            for b in lower:
                out.append(f"    {node(a)} --> {node(b)}")
    out.append("```")
    out.append("")
    out.append(f"{len(found)} modules.")
    out.append("")
    out.append("- A layer may import the layers below it (follow the arrows), never one above.")
    for group in independent:
        out.append(f"- {' and '.join(group)} sit side by side and may not import each other.")
    for packages, where in allowed.items():
        out.append(f"- {packages}: only in {', '.join(where) or 'no layer'}.")
    if outside:
        listed = ", ".join(f"`{root}/{m.replace('.', '/')}.py`" for m in outside)
        out.append(f"- Not in any layer: {listed}.")
    return "\n".join(out) + "\n"


def node(name: str) -> str:
    """A Mermaid node id: prefixed, so that a layer named like a keyword (`end`) is safe."""
    return "L_" + re.sub(r"\W", "_", name)


def split_doc(text: str) -> tuple[str, str, str] | None:
    """The text before the block (with BEGIN), the block, and the text from END on."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    head = start + len(BEGIN)
    return text[:head], text[head:end], text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true",
                        help="exit 1 if docs/architecture.md's block differs from the code")
    action.add_argument("--write", action="store_true",
                        help="rewrite docs/architecture.md's block in place")
    args = parser.parse_args(argv)
    block = generate()
    if not (args.check or args.write):
        sys.stdout.write(block)
        return 0
    parts = split_doc(DOC.read_text(encoding="utf-8")) if DOC.is_file() else None
    if parts is None:
        print(f"error: {DOC.relative_to(ROOT)} has no {BEGIN} ... {END} block", file=sys.stderr)
        return 1
    head, old, tail = parts
    new = "\n" + block
    if args.check:
        if old != new:
            print(f"error: {DOC.relative_to(ROOT)} is out of date; run python "
                  "scripts/architecture.py --write", file=sys.stderr)
            return 1
        return 0
    if old != new:
        tmp = DOC.with_suffix(".md.tmp")
        tmp.write_text(head + new + tail, encoding="utf-8")
        os.replace(tmp, DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
