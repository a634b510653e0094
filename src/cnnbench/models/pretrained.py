"""Pretrained weights from local files only: where cnnbench looks, and how a file is loaded.

Nothing here ever downloads. ``pretrained=True`` looks in the caches torchvision and timm fill
when they download (``$TORCH_HOME/hub/checkpoints`` and the Hugging Face hub cache); a directory
(``--pretrained-dir``) is searched for the file names below; a file path is loaded as is.

Files a pretrained directory may hold for a model (the first is the canonical name):

- torchvision models: the basename of torchvision's download URL (``resnet18-f37072fd.pth``);
- timm models: ``<arch>.<tag>.safetensors``, or the Hugging Face repo layout
  ``<arch>.<tag>/model.safetensors`` / ``<arch>.<tag>/pytorch_model.bin``;
- any model: ``<name>.pth`` or ``<name>.safetensors`` (a state_dict or a cnnbench checkpoint).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnbench.errors import ModelError, WeightsNotFoundError
from cnnbench.models._registry import ModelSpec, get_spec, resolve_model_names
from cnnbench.models.adapt import adapt_conv_weight
from cnnbench.models.net import ClassifierNet, LoadReport

CHECKPOINT_FORMAT = "cnnbench-checkpoint-v1"
_NONE = {"", "none", "false", "no", "random", "scratch"}
_CACHE = {"true", "cache", "imagenet", "default"}
# torchvision's DenseNet files (LuaTorch ports) name layers "norm.1"; torchvision renames them on load.
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile


@dataclass(frozen=True)
class WeightFiles:
    """Where one model's published weights may be found."""

    names: tuple[str, ...]  # file names accepted inside a pretrained directory, canonical first
    cache: tuple[Path, ...]  # where torchvision's / timm's caches keep the file (pretrained=True)
    url: str | None  # where to download it by hand


def normalize_pretrained(pretrained: object) -> bool | Path | None:
    """``None``/``False``/``"none"`` -> None; ``True``/``"cache"`` -> True; anything else -> a Path."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True:
        return True
    text = os.fspath(pretrained) if isinstance(pretrained, os.PathLike) else str(pretrained)
    if text.strip().lower() in _NONE:
        return None
    if text.strip().lower() in _CACHE:
        return True
    return Path(text).expanduser()


def _hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def weight_files(spec: ModelSpec) -> WeightFiles:
    """The files that hold ``spec``'s published weights (torchvision metadata / timm config; offline)."""
    generic = (f"{spec.name}.pth", f"{spec.name}.safetensors")
    if spec.weights is None:
        return WeightFiles(names=generic, cache=(), url=None)
    if spec.source == "torchvision":
        from torchvision import models

        url = models.get_model_weights(spec.weights).DEFAULT.url
        base = url.rsplit("/", 1)[-1]
        return WeightFiles(names=(base, *generic), cache=(Path(torch.hub.get_dir()) / "checkpoints" / base,), url=url)
    if spec.source == "timm":
        tag = spec.weights
        repo = _hf_cache_dir() / f"models--timm--{tag}" / "snapshots" / "<revision>"
        return WeightFiles(
            names=(f"{tag}.safetensors", f"{tag}/model.safetensors", f"{tag}/pytorch_model.bin", *generic),
            cache=(repo / "model.safetensors", repo / "pytorch_model.bin"),
            url=f"https://huggingface.co/timm/{tag}/resolve/main/model.safetensors",
        )
    raise ModelError(f"model {spec.name}: unknown weights source {spec.source!r}")


def _find_in_hf_cache(path: Path) -> Path | None:
    # The snapshot folder is named by a git revision we cannot know offline: look at all of them.
    snapshots = path.parent.parent
    if not snapshots.is_dir():
        return None
    hits = sorted(snapshots.glob(f"*/{path.name}"), key=lambda p: p.stat().st_mtime, reverse=True)
    return hits[0] if hits else None


def expected_weight_files(
    names: str | list[str], pretrained_dir: str | os.PathLike[str] | None = None
) -> dict[str, list[Path]]:
    """For each model, the paths where its weights may be (any one suffices).

    With ``pretrained_dir`` the candidates are inside it; without, the torchvision / Hugging Face
    caches (a ``<revision>`` part stands for any snapshot folder).
    """
    out: dict[str, list[Path]] = {}
    for name in resolve_model_names(names):
        files = weight_files(get_spec(name))
        if pretrained_dir is not None:
            out[name] = [Path(pretrained_dir).expanduser() / n for n in files.names]
        else:
            out[name] = list(files.cache)
    return out


def _locate(spec: ModelSpec, where: bool | Path) -> Path | str:
    """The weights file for ``spec``, or a line saying what is missing, where it goes and where to get it."""
    files = weight_files(spec)
    if where is True:
        if not files.cache:
            return (
                f"{spec.name}: has no published pretrained weights; pass a weights file, or a --pretrained-dir "
                f"holding {files.names[0]}"
            )
        for path in files.cache:
            if "<revision>" in path.parts:
                hit = _find_in_hf_cache(path)
                if hit is not None:
                    return hit
            elif path.is_file():
                return path
        if spec.source == "timm":
            return (
                f"{spec.name}: not in the Hugging Face cache ({files.cache[0]}); download {files.url} and pass "
                f"--pretrained-dir DIR with it saved as DIR/{files.names[0]}"
            )
        return f"{spec.name}: expected {files.cache[0]}; download {files.url} and save it there"
    assert isinstance(where, Path)
    if where.is_file():
        return where
    if where.is_dir():
        for name in files.names:
            if (where / name).is_file():
                return where / name
        also = f" (also accepted: {', '.join(files.names[1:])})"
        fetch = f"; download {files.url} and save it there" if files.url else ""
        return f"{spec.name}: expected {where / files.names[0]}{also}{fetch}"
    return f"{spec.name}: pretrained weights {where} do not exist (expected a weights file or a directory)"


def find_weights(name: str, pretrained: object) -> Path | None:
    """The weights file ``create_model(name, pretrained=...)`` would load, or None for random init.

    Raises:
        WeightsNotFoundError: naming the expected file, where to put it, and ``--pretrained none``.
    """
    where = normalize_pretrained(pretrained)
    if where is None:
        return None
    found = _locate(get_spec(name), where)
    if isinstance(found, Path):
        return found
    raise WeightsNotFoundError(f"missing pretrained weights:\n  {found}\n{_NONE_HINT}")


_NONE_HINT = (
    "Nothing is downloaded at run time; to train from random initialisation instead, run with --pretrained none."
)


def check_pretrained_available(
    names: str | list[str], pretrained_dir: str | os.PathLike[str] | None = None
) -> dict[str, Path]:
    """Check, before any training starts, that every model's weights file is present.

    Returns:
        model name -> the file that will be loaded.

    Raises:
        WeightsNotFoundError: one error listing every missing file with its expected path.
    """
    where: bool | Path = Path(pretrained_dir).expanduser() if pretrained_dir is not None else True
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in resolve_model_names(names):
        hit = _locate(get_spec(name), where)
        if isinstance(hit, Path):
            found[name] = hit
        else:
            missing.append(hit)
    if missing:
        raise WeightsNotFoundError(
            f"missing pretrained weights for {len(missing)} model(s):\n  " + "\n  ".join(missing) + f"\n{_NONE_HINT}"
        )
    return found


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``.safetensors``, a ``torch.save`` file, or a cnnbench checkpoint.

    Raises:
        ModelError: naming the file when it cannot be read or holds no state_dict.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for a damaged file
        raise ModelError(f"cannot read weights file {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        obj = obj.get("ema") or obj.get("model")
    elif isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"weights file {path} holds no state_dict (a dict of tensors)")
    return obj  # type: ignore[return-value]


def _clean_key(key: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        while key.startswith(prefix):
            key = key[len(prefix) :]
    m = _DENSENET_OLD_KEY.match(key)
    return m.group(1) + m.group(2) if m else key


def load_pretrained(model: ClassifierNet, path: str | os.PathLike[str], name: str = "model") -> LoadReport:
    """Load a weights file into a built model, fitting it the way timm does.

    Keys are accepted in the source library's naming (torchvision/timm) or in cnnbench's own. The
    first conv is adapted to the model's input channels (summed over RGB for one channel); tensors
    whose shape differs (the head, when ``num_classes`` differs) are skipped and stay freshly
    initialised.

    Raises:
        ModelError: when the file does not fit the model (fewer than half the backbone tensors match).
    """
    state = read_state_dict(path)
    own = model.state_dict()
    first = f"{model.first_conv}.weight"
    head = {f"fc.{k}" for k in model.fc.state_dict()}
    report = LoadReport(path=str(path), loaded=0, total=len(own))
    to_load: dict[str, torch.Tensor] = {}
    for raw_key, value in state.items():
        key = _clean_key(raw_key)
        if any(key.startswith(p) for p in model.ignored_source_prefixes):
            report.skipped.append(f"{raw_key}: auxiliary classifier, not built")
            continue
        target = key if key in own else model.source_key_map.get(key)
        if target is None:
            report.unexpected.append(raw_key)
            continue
        want = own[target]
        if target == first and value.ndim == 4 and value.shape[1] != want.shape[1] and value.shape[0] == want.shape[0]:
            how = "summed over" if want.shape[1] == 1 else "tiled and scaled from"
            report.adapted.append(f"{target}: {want.shape[1]} input channel(s) {how} the file's {value.shape[1]}")
            value = adapt_conv_weight(value, int(want.shape[1]))
        if value.shape != want.shape:
            why = "new head for num_classes/head" if target in head else "shape differs"
            report.skipped.append(f"{target}: {why} (file {tuple(value.shape)}, model {tuple(want.shape)})")
            continue
        to_load[target] = value
    backbone = [k for k in own if k.startswith("features.")]
    matched = sum(k in to_load for k in backbone)
    if matched < 0.5 * len(backbone):
        example = ", ".join(report.unexpected[:3]) or ", ".join(report.skipped[:3])
        raise ModelError(
            f"{path} does not hold weights for {name}: only {matched} of {len(backbone)} backbone tensors match"
            f"{f' (e.g. {example})' if example else ''}"
        )
    model.load_state_dict(to_load, strict=False)
    report.loaded = len(to_load)
    report.missing = [k for k in own if k not in to_load]
    return report
