"""The architecture holds: layers import only downward, no cycle, no reach into a part's
private modules, no module over 300 lines.

The import graph is read from the source (every `import`, those under `TYPE_CHECKING`
and inside functions included), so a later change that breaks the layering fails here
before anyone has to notice it in review. The checker itself is tested on small made-up
trees, so that a broken checker cannot pass everything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "loopline"
PARTS = ("streams", "batching", "compose", "feedback")
MAX_LINES = 300

# The layer order of the README's "Architecture": shared helpers at the bottom, then
# streams, batching and compose, each on the ones below; feedback needs only the
# helpers; the public face (loopline/__init__.py) gathers the parts; the CLI and the
# demo use nothing but the face, as a user would.
MAY_IMPORT = {
    "helpers": {"helpers"},
    "streams": {"helpers", "streams"},
    "batching": {"helpers", "streams", "batching"},
    "compose": {"helpers", "streams", "batching", "compose"},
    "feedback": {"helpers", "feedback"},
    "face": {"helpers", *PARTS},
    "cli": {"face", "demo", "cli"},
    "demo": {"face", "demo"},
    "main": {"cli"},
}


def module_files(root: Path) -> dict[str, Path]:
    """`{dotted module name: file}` for every module of the package at `root`."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "face"
    if parts[1] in PARTS or parts[1] in ("demo", "cli"):
        return parts[1]
    if parts[1] == "__main__":
        return "main"
    return "helpers"  # loopline._checks, loopline._tree, ...


def imports(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, str | None]]:
    """`(imported module, imported name or None)` for each import of the package itself."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = module.split(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == top:
                    yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != top:
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule, None) if submodule in known else (base, alias.name)


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def problems(root: Path) -> list[str]:
    """Every breach of the layering under `root`, one line each."""
    modules = module_files(root)
    known = set(modules)
    found, edges = [], {name: set() for name in modules}
    for module, path in modules.items():
        layer = layer_of(module)
        for target, name in imports(module, path, known):
            edges[module].add(target)
            where = f"{module} imports {target}" + (f".{name}" if name else "")
            to = layer_of(target)
            if to not in MAY_IMPORT[layer]:
                found.append(f"{where}: layer {layer} may not import layer {to}")
            if layer != to and (
                any(is_private(part) for part in target.split(".")[1:] if to != "helpers")
                or (name is not None and is_private(name))
            ):
                found.append(f"{where}: a private name of another part")
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            found.append(f"{module} has {lines} lines, more than {MAX_LINES}")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path) for each back edge a depth-first walk meets."""
    found: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the walk's path, "done" after
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state and target in edges:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return found


def test_loopline_keeps_its_layers():
    assert problems(SRC) == []


def test_every_part_explains_its_model_in_its_docstring():
    for part in [*PARTS, "demo"]:
        doc = ast.get_docstring(ast.parse((SRC / part / "__init__.py").read_text())) or ""
        assert len(doc.splitlines()) >= 3, f"loopline.{part} needs a docstring of a few lines"


def test_no_file_of_the_project_is_over_300_lines():
    project = SRC.parents[1]
    long = {
        str(path.relative_to(project)): lines
        for folder in ("src", "tests", "benchmarks", "examples")
        for path in sorted((project / folder).rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    package = root / "loopline"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return package


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"streams/a.py": "from loopline.feedback.b import f\n", "feedback/b.py": ""},
            "loopline.streams.a imports loopline.feedback.b.f: layer streams may not "
            "import layer feedback",
        ),
        (
            {"feedback/a.py": "import loopline.compose.graph\n", "compose/graph.py": ""},
            "loopline.feedback.a imports loopline.compose.graph: layer feedback may not "
            "import layer compose",
        ),
        (
            {"batching/a.py": "from loopline.streams._orders import x\n", "streams/_orders.py": ""},
            "loopline.batching.a imports loopline.streams._orders.x: a private name of "
            "another part",
        ),
        (
            {"compose/a.py": "from loopline.batching.padded import _dims\n"},
            "loopline.compose.a imports loopline.batching.padded._dims: a private name of "
            "another part",
        ),
        (
            {"demo/run.py": "from loopline.streams.forever import forever\n"},
            "loopline.demo.run imports loopline.streams.forever.forever: layer demo may not "
            "import layer streams",
        ),
        (
            {
                "compose/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from loopline.compose.b import B\n",
                "compose/b.py": "def f():\n    from loopline.compose import a\n",
            },
            "import cycle: loopline.compose.a -> loopline.compose.b -> loopline.compose.a",
        ),
        (
            {"streams/long.py": "x = 1\n" * (MAX_LINES + 1)},
            f"loopline.streams.long has {MAX_LINES + 1} lines, more than {MAX_LINES}",
        ),
    ],
)
def test_the_checker_names_each_kind_of_breach(tmp_path, files, expected):
    assert expected in problems(write_tree(tmp_path, files))


def test_the_checker_allows_what_the_layers_allow(tmp_path):
    package = write_tree(
        tmp_path,
        {
            "_checks.py": "",
            "streams/_orders.py": "from loopline._checks import check_int\n",
            "streams/forever.py": "from loopline.streams._orders import x\n",
            "batching/bucket.py": "from loopline.streams.forever import forever\n",
            "compose/graph.py": "from loopline.batching.bucket import bucket\n",
            "demo/run.py": "import loopline\nfrom loopline.demo import _progress\n",
            "demo/_progress.py": "",
        },
    )
    assert problems(package) == []
