"""The layering of docs/architecture.md, enforced: every import of every module under src/cnnbench.

Imports are read with ``ast`` (no module is executed), so an import inside a function or under
``if TYPE_CHECKING:`` counts as much as one at the top of a file: a lazy import still ties the two
layers together. ``importlib.import_module("cnnbench.x")`` with a literal name counts too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cnnbench"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Layer -> the layers it may import (besides itself), bottom to top. A layer is a sub-package or a
# top-level module of cnnbench. docs/architecture.md shows the same table (a test below checks it).
BOTTOM = ("errors", "utils", "rundir")
LAYERS: dict[str, tuple[str, ...]] = {
    "errors": (),
    "utils": ("errors",),
    "rundir": ("errors", "utils"),
    "data": BOTTOM,
    "models": BOTTOM,
    "checkpoints": (*BOTTOM, "data", "models"),
    "engine": (*BOTTOM, "data", "models", "checkpoints"),
    "bench": (*BOTTOM, "data", "models"),
    "analysis": (*BOTTOM, "data", "models", "checkpoints"),  # never engine: analysis reads what training wrote
    "study": (*BOTTOM, "data", "models", "checkpoints", "engine", "bench", "analysis"),
    "report": (*BOTTOM, "data"),  # result files only (data: the augmented.npz format); never torch
    "cli": ("*",),
    "__main__": ("*",),
}
# The root package is a lazy facade (importing it loads no sub-package), so reading
# ``cnnbench.__version__`` is allowed from anywhere; its own lazy imports are the public API.
FACADE = "cnnbench"


def layer_of(module: str) -> str:
    """``cnnbench.engine.trainer`` -> ``engine``; ``cnnbench.rundir`` -> ``rundir``; ``cnnbench`` -> ``cnnbench``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACADE


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    path = SRC.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """(cnnbench module imported, line) for every import in the file (or ``source``), at any depth."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source if source is not None else path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..engine import y
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # ``from cnnbench import engine`` imports the sub-package, not the facade
            subs = [f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")]
            found += [(t, node.lineno) for t in subs] or [(target, node.lineno)]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, node.lineno))
    return [(name, line) for name, line in found if name == "cnnbench" or name.startswith("cnnbench.")]


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        source = layer_of(module_name(path))
        if source == FACADE:
            continue
        allowed = LAYERS.get(source)
        if allowed is None:
            problems.append(f"{path.relative_to(ROOT)}: layer {source!r} is not in LAYERS (tests/test_layers.py)")
            continue
        for target, line in imported_modules(path):
            dest = layer_of(target)
            if dest in (source, FACADE) or "*" in allowed or dest in allowed:
                continue
            problems.append(
                f"{path.relative_to(ROOT)}:{line}: {source} imports {target} (allowed: {', '.join(allowed)})"
            )
    return problems


def test_no_module_imports_a_layer_above_its_own():
    problems = upward_imports()
    assert not problems, "imports against the layering of docs/architecture.md:\n" + "\n".join(problems)


def test_the_layers_form_an_order():
    """No two layers may import each other, directly or around a cycle: the table is a ladder."""
    state: dict[str, str] = {}

    def visit(layer: str, path: tuple[str, ...]) -> None:
        assert state.get(layer) != "open", f"layer cycle: {' -> '.join((*path, layer))}"
        if state.get(layer) == "done":
            return
        state[layer] = "open"
        for dep in LAYERS[layer]:
            if dep != "*":
                visit(dep, (*path, layer))
        state[layer] = "done"

    for layer in LAYERS:
        visit(layer, ())


def test_every_layer_in_the_table_exists():
    for layer in LAYERS:
        assert _is_module(f"cnnbench.{layer}"), f"LAYERS names {layer!r}, which is not a module of cnnbench"


def _docs_table() -> dict[str, set[str]]:
    """``| `cnnbench.x` | owns | `a`, `b` |`` rows of the architecture table -> {x: {a, b}}."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`cnnbench."):
            continue
        may = set(re.findall(r"`([\w*]+)`", cells[2]))
        for name in re.findall(r"`cnnbench\.(\w+)`", cells[0]):
            rows[name] = may
    return rows


def test_the_architecture_doc_shows_the_same_table():
    docs = _docs_table()
    assert docs, f"{ARCHITECTURE} lost its layer table (rows of `cnnbench.x` | owns | may import)"
    code = {k: set(v) for k, v in LAYERS.items()}
    assert docs == code, "docs/architecture.md's layer table differs from LAYERS in tests/test_layers.py"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from cnnbench.engine.stop import STOP\n", "cnnbench.engine.stop"),
        ("def f():\n    from cnnbench.report import build_report\n", "cnnbench.report"),
        ("from cnnbench import engine\n", "cnnbench.engine"),
        ("from ..engine import TrainConfig\n", "cnnbench.engine"),
        ("import importlib\nimportlib.import_module('cnnbench.cli.common')\n", "cnnbench.cli.common"),
    ],
)
def test_the_scanner_sees_imports_at_any_depth(source, expected):
    """The check itself: lazy, sub-package and importlib imports are all found."""
    probe = SRC / "analysis" / "_layer_probe.py"  # a path inside the package; never written
    assert [name for name, _ in imported_modules(probe, source)] == [expected]


# Sizes a newcomer can read (issue 28): a file fits in one sitting, a function on one screen, a call
# in one line of thought. The engine, the part read most, is held to a tighter file size.
MAX_FILE_LINES = 450
MAX_ENGINE_FILE_LINES = 400
MAX_FUNCTION_LINES = 50  # from ``def`` to the last line, docstring included
MAX_PARAMETERS = 10  # self and cls not counted


def _sources() -> list[tuple[Path, ast.Module, int]]:
    return [
        (path, ast.parse(text, str(path)), text.count("\n"))
        for path in sorted(SRC.rglob("*.py"))
        for text in [path.read_text(encoding="utf-8")]
    ]


def test_no_file_is_longer_than_a_sitting():
    problems = []
    for path, _, lines in _sources():
        limit = MAX_ENGINE_FILE_LINES if path.parent.name == "engine" else MAX_FILE_LINES
        if lines > limit:
            problems.append(f"{path.relative_to(ROOT)}: {lines} lines (at most {limit})")
    assert not problems, "files to split by job:\n" + "\n".join(problems)


def _functions(tree: ast.Module):
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_no_function_is_longer_than_a_screen():
    problems = [
        f"{path.relative_to(ROOT)}:{f.lineno} {f.name}: {f.end_lineno - f.lineno + 1} lines"
        for path, tree, _ in _sources()
        for f in _functions(tree)
        if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not problems, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(problems)


def test_no_signature_passes_more_than_ten_values():
    problems = []
    for path, tree, _ in _sources():
        for f in _functions(tree):
            a = f.args
            names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
            count = len(names) + bool(a.vararg) + bool(a.kwarg) - (names[:1] in (["self"], ["cls"]))
            if count > MAX_PARAMETERS:
                problems.append(f"{path.relative_to(ROOT)}:{f.lineno} {f.name}: {count} parameters")
    assert not problems, f"signatures over {MAX_PARAMETERS} parameters (pass a parameter object):\n" + "\n".join(
        problems
    )


def _run_dir_names() -> tuple[set[str], re.Pattern]:
    from cnnbench.rundir import layout

    names = {v for k, v in vars(layout).items() if k.endswith(("_FILE", "_FIGURE")) and isinstance(v, str)}
    names -= {layout.STUDY_FILE, layout.STUDY_LOCK_FILE, layout.SAMPLES_FILE, layout.RESULTS_FILE}
    names -= {layout.AGGREGATE_FILE}
    names |= {layout.checkpoint_file(which) for which in ("best", "last", "last.prev")}
    # these two are named nowhere else, not even in a message: the issue's `grep summary.json\|config.yaml`
    anywhere = re.compile(rf"{re.escape(layout.SUMMARY_FILE)}|{re.escape(layout.CONFIG_FILE)}")
    return names, anywhere


def test_run_directory_file_names_are_spelled_only_by_the_run_directory_module():
    """A path of a run directory comes from ``cnnbench.rundir.layout``: no other module spells a file
    name as a string (docstrings and comments may name files)."""
    names, anywhere = _run_dir_names()
    problems = []
    for path, tree, _ in _sources():
        if path.parent.name == "rundir":
            continue
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
                continue
            if node.value in names or anywhere.search(node.value):
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:80]!r}")
    assert not problems, "run-directory file names outside cnnbench.rundir.layout:\n" + "\n".join(problems)
