"""pyproject.toml against the code: every core dependency is imported by cnnbench, nothing else is
required, and optional packages are imported only where their extra says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
#: Distribution name -> the module it installs, where they differ.
IMPORT_NAME = {
    "pillow": "PIL",
    "pyyaml": "yaml",
    "scikit-learn": "sklearn",
    "opentsne": "openTSNE",
    "tensorboard": "torch.utils.tensorboard",  # torch's SummaryWriter needs the tensorboard package
}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _dist_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def _imported_top_modules(folder: Path) -> dict[str, list[str]]:
    """Module (top-level and full dotted name) -> files under ``folder`` that import it (lazy imports too)."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                for key in {name, name.split(".")[0]}:
                    found.setdefault(key, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_core_dependency_is_imported_by_the_package():
    used = _imported_top_modules(ROOT / "src" / "cnnbench")
    unused = []
    for requirement in _project()["dependencies"]:
        dist = _dist_name(requirement)
        if IMPORT_NAME.get(dist, dist) not in used:
            unused.append(dist)
    assert unused == [], f"declared in [project] dependencies but never imported by src/cnnbench: {unused}"


def test_kornia_and_torchinfo_are_not_core_dependencies_and_kornia_is_the_bench_extra():
    project = _project()
    core = {_dist_name(r) for r in project["dependencies"]}
    assert "kornia" not in core and "torchinfo" not in core
    assert {_dist_name(r) for r in project["optional-dependencies"]["bench"]} == {"kornia"}
    onnx = {_dist_name(r) for r in project["optional-dependencies"]["onnx"]}
    assert {"onnx", "onnxruntime"} <= onnx
    # the test extra carries what the ONNX tests need, so `.ci/run` (pip install -e ".[test]") runs them
    assert onnx <= {_dist_name(r) for r in project["optional-dependencies"]["test"]}


@pytest.mark.parametrize("folder", ["src", "tests"])
def test_kornia_is_imported_only_by_the_benchmarks(folder):
    users = _imported_top_modules(ROOT / folder).get("kornia", [])
    assert users == [], f"kornia is the bench extra (pip install -e '.[bench]'), yet imported by {users}"


def test_the_readme_names_the_extras_and_the_cpu_only_install():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
    for extra in _project()["optional-dependencies"]:
        assert f'".[{extra}]"' in readme, extra
