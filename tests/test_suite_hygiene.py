"""The test suite's own rules, checked by reading the tests with ``ast``.

- A test that trains a model or spawns a process is marked ``slow``, so ``pytest -m "not slow"`` is
  the quick loop (CI runs everything). "Trains or spawns" means: it calls ``fit``, ``run_study``,
  ``embed_run``, ``run_cli``, ``subprocess.*`` or ``Popen``, itself or through a helper or fixture
  defined in its file or in conftest.py.
- No test asserts that something took less than a measured time (``time.monotonic() - start < 5``):
  the machines that run the suite are shared, so a time limit is a flaky test. Bound a hang with
  ``@pytest.mark.timeout``, a ``timeout=`` or a generous deadline instead, and assert on work done.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
HEAVY_CALLS = {"fit", "run_study", "embed_run", "run_cli", "Popen"}
CLOCKS = {"monotonic", "perf_counter", "time"}


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Attribute):
                names.add(f.attr)
                if isinstance(f.value, ast.Name) and f.value.id == "subprocess":
                    names.add("Popen")  # any subprocess.* call spawns
            elif isinstance(f, ast.Name):
                names.add(f.id)
    return names


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _is_marked_slow(decorators: list[ast.expr]) -> bool:
    return any("mark.slow" in ast.unparse(d) for d in decorators)


def _module_marked_slow(tree: ast.Module) -> bool:
    for n in tree.body:
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets):
            return "mark.slow" in ast.unparse(n.value)
    return False


def _is_heavy(name: str, functions: dict[str, ast.FunctionDef], cache: dict[str, bool], seen=frozenset()) -> bool:
    """``name`` (a test, helper or fixture) calls a heavy function, or a helper or fixture that does."""
    if name not in cache:
        if name in seen or name not in functions:
            return False
        f = functions[name]
        used = _called_names(f) | {a.arg for a in f.args.args}  # helpers called, fixtures requested
        cache[name] = bool(used & HEAVY_CALLS) or any(
            _is_heavy(u, functions, cache, seen | {name}) for u in used - {name}
        )
    return cache[name]


def unmarked_heavy_tests() -> list[str]:
    shared = _functions(ast.parse((TESTS / "conftest.py").read_text(encoding="utf-8")))
    found = []
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if _module_marked_slow(tree):
            continue
        functions, cache = {**shared, **_functions(tree)}, {}
        found += [
            f"{path.name}:{n.lineno}: {n.name}"
            for n in tree.body
            if isinstance(n, ast.FunctionDef)
            and n.name.startswith("test_")
            and not _is_marked_slow(n.decorator_list)
            and _is_heavy(n.name, functions, cache)
        ]
    return found


def _has_clock(node: ast.AST) -> bool:
    return any(
        isinstance(c, ast.Call)
        and isinstance(c.func, ast.Attribute)
        and c.func.attr in CLOCKS
        and getattr(c.func.value, "id", "") == "time"
        for c in ast.walk(node)
    )


def _is_elapsed(node: ast.AST, elapsed_names: set[str]) -> bool:
    """``time.monotonic() - start``, a name assigned from one, or a recorded time (``summary["train_time_s"]``)."""
    if isinstance(node, ast.Name):
        return node.id in elapsed_names
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value.endswith(("time_s", "seconds"))
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and _has_clock(node)


def _is_time_limit(compare: ast.Compare, elapsed_names: set[str]) -> bool:
    """``duration < limit`` (or ``limit > duration``): an upper bound on a time."""
    sides = [compare.left, *compare.comparators]
    for (left, right), op in zip(zip(sides[:-1], sides[1:], strict=True), compare.ops, strict=True):
        if isinstance(op, (ast.Lt, ast.LtE)) and _is_elapsed(left, elapsed_names):
            return True
        if isinstance(op, (ast.Gt, ast.GtE)) and _is_elapsed(right, elapsed_names):
            return True
    return False


def wall_clock_assertions() -> list[str]:
    """Asserts that put an upper limit on a measured or recorded time (a deadline bounding a wait is fine)."""
    found = []
    for path in sorted(TESTS.glob("test_*.py")):
        for func in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(func, ast.FunctionDef):
                continue
            elapsed = {
                t.id
                for n in ast.walk(func)
                if isinstance(n, ast.Assign) and _is_elapsed(n.value, set())
                for t in n.targets
                if isinstance(t, ast.Name)
            }
            for n in ast.walk(func):
                if isinstance(n, ast.Assert) and any(
                    isinstance(c, ast.Compare) and _is_time_limit(c, elapsed) for c in ast.walk(n.test)
                ):
                    found.append(f"{path.name}:{n.lineno}: {ast.unparse(n.test)[:80]}")
    return sorted(set(found))


def test_every_test_that_trains_or_spawns_is_marked_slow():
    found = unmarked_heavy_tests()
    assert not found, "trains or spawns a process but is not @pytest.mark.slow:\n" + "\n".join(found)


def test_no_test_asserts_a_wall_clock_time():
    found = wall_clock_assertions()
    assert not found, "wall-clock assertions (flaky on a shared machine):\n" + "\n".join(found)
