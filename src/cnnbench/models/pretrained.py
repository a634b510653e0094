"""Pretrained weights: where cnnbench looks, what it downloads, and how a file is loaded.

``pretrained=True`` (``--pretrained true``) takes a model's published weights from the cache
torchvision or timm keeps them in, and when they are not there downloads them exactly as
``torchvision.models.get_weight(...).get_state_dict(check_hash=True)`` / timm's ``pretrained=True``
would: the same URL, the same cache file (``$TORCH_HOME/hub/checkpoints`` for torchvision; the
Hugging Face hub cache, through ``huggingface_hub``, for timm), torchvision's sha256-prefix check
(``models.hub``). ``CNNBENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` forbid downloads: a missing file is
then an error that says where cnnbench looked and which URL to fetch by hand.

A directory (``--pretrained-dir``) is searched for the file names below and never downloaded into;
a file path is loaded as is. Files a pretrained directory may hold for a model (the first is the
canonical name):

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

from cnnbench.errors import ModelError, WeightsDownloadError, WeightsNotFoundError
from cnnbench.models import hub
from cnnbench.models._registry import ModelSpec, get_spec, resolve_model_names
from cnnbench.models.adapt import adapt_conv_weight
from cnnbench.models.net import ClassifierNet, LoadReport
from cnnbench.utils.weightsfile import EXPECTED, weights_file_problem

CHECKPOINT_FORMAT = "cnnbench-checkpoint-v1"
_NONE = {"", "none", "false", "no", "random", "scratch"}
_CACHE = {"true", "cache", "imagenet", "default"}
# torchvision's DenseNet files (LuaTorch ports) name layers "norm.1"; torchvision renames them on load.
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile
_NONE_HINT = "to train from random initialisation instead, run with --pretrained none"


@dataclass(frozen=True)
class WeightFiles:
    """Where one model's published weights may be found."""

    names: tuple[str, ...]  # file names accepted inside a pretrained directory, canonical first
    cache: tuple[Path, ...]  # where torchvision's / timm's caches keep the file (pretrained=True)
    url: str | None  # where they are published (before CNNBENCH_WEIGHTS_BASE_URL)
    hf_repo: str | None = None  # the Hugging Face repo of timm weights ("timm/<arch>.<tag>")


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
    # read at each call (huggingface_hub reads its variables once, at import)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def _torchvision_url(weights: str) -> str:
    """The download URL of a torchvision model's default weights (from its weights enum; offline)."""
    from torchvision import models

    return models.get_model_weights(weights).DEFAULT.url


def weight_files(spec: ModelSpec) -> WeightFiles:
    """The files that hold ``spec``'s published weights (torchvision metadata / timm config; offline)."""
    generic = (f"{spec.name}.pth", f"{spec.name}.safetensors")
    if spec.weights is None:
        return WeightFiles(names=generic, cache=(), url=None)
    if spec.source == "torchvision":
        url = _torchvision_url(spec.weights)
        base = url.rsplit("/", 1)[-1]
        return WeightFiles(names=(base, *generic), cache=(Path(torch.hub.get_dir()) / "checkpoints" / base,), url=url)
    if spec.source == "timm":
        tag = spec.weights
        repo = _hf_cache_dir() / f"models--timm--{tag}" / "snapshots" / "<revision>"
        return WeightFiles(
            names=(f"{tag}.safetensors", f"{tag}/model.safetensors", f"{tag}/pytorch_model.bin", *generic),
            cache=tuple(repo / f for f in hub.HF_FILES),
            url=f"https://huggingface.co/timm/{tag}/resolve/main/{hub.HF_FILES[0]}",
            hf_repo=f"timm/{tag}",
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


@dataclass(frozen=True)
class _Missing:
    """Why a model's weights cannot be had: one line naming the model, the places looked and what to do."""

    line: str
    download_failed: bool = False


def _in_cache(files: WeightFiles) -> Path | None:
    for path in files.cache:
        if "<revision>" in path.parts:
            hit = _find_in_hf_cache(path)
            if hit is not None:
                return hit
        elif path.is_file():
            return path
    return None


def _from_cache(spec: ModelSpec, files: WeightFiles, download: bool) -> Path | _Missing:
    """``spec``'s weights from torchvision's / timm's cache, downloaded there when missing and allowed."""
    if not files.cache or files.url is None:
        return _Missing(
            f"{spec.name}: has no published pretrained weights; pass a weights file, or a --pretrained-dir "
            f"holding {files.names[0]}"
        )
    hit = _in_cache(files)
    if hit is not None:
        return hit
    url = hub.mirror_url(files.url)
    if files.hf_repo is not None:
        looked = f"not in the Hugging Face cache ({files.cache[0].parent.parent}/*/{' or '.join(hub.HF_FILES)})"
        by_hand = f"download {url} and pass --pretrained-dir DIR with it saved as DIR/{files.names[0]}"
    else:
        looked = f"not in the torch hub cache (expected {files.cache[0]})"
        by_hand = f"download {url} and save it there"
    blocked = hub.downloads_blocked()
    if blocked is not None:
        return _Missing(f"{spec.name}: pretrained weights {looked}, and downloads are off ({blocked}); {by_hand}")
    if not download:
        return files.cache[0]  # where it will be downloaded to
    try:
        if files.hf_repo is not None:
            return hub.download_from_hf(files.hf_repo, _hf_cache_dir())
        return hub.download_to_file(url, files.cache[0], hub.hash_prefix(files.cache[0].name))
    except WeightsDownloadError as exc:
        return _Missing(f"{spec.name}: pretrained weights {looked}; {exc}; run again to retry, or {by_hand}", True)


def _locate(spec: ModelSpec, where: bool | Path, download: bool = True) -> Path | _Missing:
    """The weights file for ``spec``, or a line saying what is missing, where it goes and where to get it."""
    files = weight_files(spec)
    if where is True:
        return _from_cache(spec, files, download)
    assert isinstance(where, Path)
    if where.is_file():
        return where
    if where.is_dir():
        for name in files.names:
            if (where / name).is_file():
                return where / name
        also = f" (also accepted: {', '.join(files.names[1:])})"
        fetch = f"; download {hub.mirror_url(files.url)} and save it there" if files.url else ""
        return _Missing(f"{spec.name}: expected {where / files.names[0]}{also}{fetch}")
    return _Missing(f"{spec.name}: pretrained weights {where} do not exist (expected a weights file or a directory)")


def find_weights(name: str, pretrained: object) -> Path | None:
    """The weights file ``create_model(name, pretrained=...)`` would load, or None for random init.

    With ``pretrained=True`` a file missing from torchvision's / timm's cache is downloaded there
    (unless ``CNNBENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` is set).

    Raises:
        WeightsNotFoundError: naming where cnnbench looked, the URL to fetch by hand, and ``--pretrained none``.
        WeightsDownloadError: the download failed (no connection, interrupted, wrong checksum); nothing was saved.
    """
    where = normalize_pretrained(pretrained)
    if where is None:
        return None
    found = _locate(get_spec(name), where)
    if isinstance(found, Path):
        return found
    error = WeightsDownloadError if found.download_failed else WeightsNotFoundError
    raise error(f"{found.line}; {_NONE_HINT}")


def check_pretrained_available(
    names: str | list[str], pretrained_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> dict[str, Path]:
    """Check, before any training starts, that every model's weights file is present or can be had.

    Args:
        names: model names or groups.
        pretrained_dir: a directory of weights files; None for torchvision's / timm's caches.
        download: with the caches, download the files that are missing (one after the other, before
            any run starts). False checks without downloading: a file that would be downloaded counts
            as available (unless downloads are off).

    Returns:
        model name -> the file that will be loaded (with ``download=False``, where a file still to
        download will be saved; ``<revision>`` stands for the Hugging Face snapshot folder).

    Raises:
        WeightsNotFoundError: one error listing every missing file with where it was looked for.
        WeightsDownloadError: the same, when a download failed.
    """
    where: bool | Path = Path(pretrained_dir).expanduser() if pretrained_dir is not None else True
    found: dict[str, Path] = {}
    missing: list[_Missing] = []
    for name in resolve_model_names(names):
        hit = _locate(get_spec(name), where, download)
        if isinstance(hit, Path):
            found[name] = hit
        else:
            missing.append(hit)
    if missing:
        error = WeightsDownloadError if any(m.download_failed for m in missing) else WeightsNotFoundError
        raise error(
            f"missing pretrained weights for {len(missing)} model(s):\n  "
            + "\n  ".join(m.line for m in missing)
            + f"\n{_NONE_HINT[0].upper()}{_NONE_HINT[1:]}."
        )
    return found


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``.safetensors``, a ``torch.save`` file, or a cnnbench checkpoint.

    Raises:
        ModelError: naming the file when it cannot be read or holds no state_dict.
    """
    path = Path(path)
    problem = weights_file_problem(path)
    if problem is not None:
        raise ModelError(f"weights file {path}: {problem}; {EXPECTED}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for a damaged file
        # torch's first sentence; what follows (weights_only advice, "an internal miniz error") is no help here
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:160]
        raise ModelError(
            f"cannot read weights file {path}: it is damaged or truncated ({type(exc).__name__}: {first})"
        ) from exc
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
