"""Find a dataset's files: ``--data-dir``, ``$CNNBENCH_DATA/<name>``, ``~/.cache/cnnbench/<name>``,
known system paths, then a download from the published mirrors.

When nothing is found the error lists every place looked, why each did not qualify, the file
names expected and what the download attempt said.
"""

from __future__ import annotations

import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from cnnbench.data.catalog import DatasetSpec
from cnnbench.data.download import DownloadError, download_file, md5_of, reachable
from cnnbench.errors import ChecksumError, DataError, DataNotFoundError, OutputError
from cnnbench.utils.fetch import downloads_blocked

_CALTECH_CLASS = re.compile(r"^\d{3}\.")


@dataclass
class Located:
    """Where a dataset was found: the directory, the files by published name, and how it got there."""

    directory: Path
    files: dict[str, Path]
    place: str  # "--data-dir", "$CNNBENCH_DATA", "cache", "system", "download"
    notes: list[str] = field(default_factory=list)


def home_cache() -> Path:
    """``~/.cache/cnnbench`` (downloads land in ``<this>/<name>`` unless $CNNBENCH_DATA is set)."""
    return Path("~/.cache/cnnbench").expanduser()


def cache_root(override: str | None = None) -> Path:
    """The decode-once cache and split lists: ``override``, ``$CNNBENCH_CACHE``, or ``~/.cache/cnnbench/cache``."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("CNNBENCH_CACHE")
    if env:
        _check_directory("CNNBENCH_CACHE=", env, "a directory for the decode-once cache and split lists (or unset it)")
    return Path(env).expanduser() if env else home_cache() / "cache"


def check_data_paths(data_dir: str | None) -> None:
    """``--data-dir`` and ``$CNNBENCH_DATA`` name directories (or nothing yet): a regular file there is an
    error now, before anything is looked up inside it or a download is planned into it.

    Raises:
        DataError: naming the flag or variable, the file, and what is expected.
    """
    if data_dir:
        _check_directory("--data-dir ", data_dir, "the directory that holds the dataset's files")
    env = os.environ.get("CNNBENCH_DATA")
    if env:
        _check_directory("CNNBENCH_DATA=", env, "a directory with one sub-directory per dataset (or unset it)")


def _check_directory(label: str, value: str, expected: str) -> None:
    """``value`` is a directory, or a path whose first existing ancestor is one.

    Raises:
        DataError: ``"<label><value> is not a directory (... is a file): expected <expected>"``.
    """
    path = Path(value).expanduser()
    try:
        for existing in (path, *path.parents):
            if existing.exists():
                if not existing.is_dir():
                    where = "" if existing == path else f" ({existing} is a file)"
                    raise DataError(f"{label}{value} is not a directory{where}: expected {expected}")
                return
    except OSError as exc:  # a name too long, a symlink loop
        raise DataError(f"{label}{value}: {exc.strerror or exc}; expected {expected}") from None


def candidates(spec: DatasetSpec, data_dir: str | None) -> list[tuple[str, Path | None, str]]:
    """(label, directory or None, why it is unavailable) in search order."""
    check_data_paths(data_dir)
    out: list[tuple[str, Path | None, str]] = []
    out.append(("--data-dir", Path(data_dir).expanduser() if data_dir else None, "not given"))
    env = os.environ.get("CNNBENCH_DATA")
    out.append(("$CNNBENCH_DATA", Path(env).expanduser() / spec.name if env else None, "CNNBENCH_DATA is not set"))
    out.append(("cache", home_cache() / spec.name, ""))
    for p in spec.system_paths:
        out.append(("system", Path(p), ""))
    return out


def download_dir(spec: DatasetSpec, data_dir: str | None) -> Path:
    """Where a download goes: ``--data-dir`` if given, else ``$CNNBENCH_DATA/<name>``, else the home cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("CNNBENCH_DATA")
    return Path(env).expanduser() / spec.name if env else home_cache() / spec.name


def _variants(name: str) -> list[str]:
    """Accepted spellings of a published file: ``x.gz`` or unpacked ``x``; ``train-images.idx3-ubyte`` too."""
    base = name[:-3] if name.endswith(".gz") else name
    dotted = base.replace("-idx", ".idx")
    return list(dict.fromkeys([name, base, dotted, dotted + ".gz"]))


def find_files(spec: DatasetSpec, directory: Path) -> tuple[dict[str, Path] | None, str]:
    """The spec's files under ``directory`` (in any of its layouts), or (None, what is missing)."""
    if not directory.is_dir():
        return None, "does not exist" if not directory.exists() else "is not a directory"
    if spec.format == "folder":
        root = find_class_root(spec, directory)
        return ({"root": root}, "") if root else (None, "holds no class folders (NNN.name/)")
    best_missing: list[str] | None = None
    for sub in spec.subdirs:
        base = directory / sub if sub else directory
        if spec.archive is not None and (base / spec.archive.name).is_file():
            return {spec.archive.name: base / spec.archive.name}, ""
        found: dict[str, Path] = {}
        missing: list[str] = []
        for f in spec.files:
            hit = next((base / v for v in _variants(f.name) if (base / v).is_file()), None)
            if hit is None:
                missing.append(f.name)
            else:
                found[f.name] = hit
        if not missing:
            return found, ""
        if best_missing is None or len(missing) < len(best_missing):
            best_missing = missing
    names = ", ".join(best_missing or [])
    return None, f"lacks {names}" if len(best_missing or []) < len(spec.files) else "holds none of the files"


def find_class_root(spec: DatasetSpec, directory: Path) -> Path | None:
    """The Caltech-256 class-folder root under ``directory`` (``256_ObjectCategories`` or itself)."""
    for sub in spec.subdirs:
        base = directory / sub if sub else directory
        try:
            if base.is_dir() and any(p.is_dir() and _CALTECH_CLASS.match(p.name) for p in base.iterdir()):
                return base
        except OSError:
            continue
    return None


def expected_files(spec: DatasetSpec) -> str:
    if spec.format == "folder":
        return "a 256_ObjectCategories/ directory of class folders (001.ak47/001_0001.jpg, ...)"
    names = ", ".join(f.name for f in spec.files)
    if spec.archive is not None:
        return f"{spec.archive.name}, or the directory {spec.subdirs[0]}/ holding {names}"
    return f"{names} (gzipped or not)"


def locate(spec: DatasetSpec, data_dir: str | None, download: bool, timeout: float) -> Located:
    """Find the dataset, downloading it when allowed and nothing local qualifies.

    Raises:
        DataNotFoundError: listing every place looked and why, the expected files and the download outcome.
        ChecksumError: every mirror delivered a file with the wrong checksum.
    """
    looked: list[str] = []
    notes: list[str] = []
    for label, directory, why in candidates(spec, data_dir):
        if directory is None:
            looked.append(f"{label}: {why}")
            continue
        files, problem = find_files(spec, directory)
        if files is not None:
            if label != "--data-dir" and data_dir:
                notes.append(f"--data-dir {data_dir} holds no {spec.name} files; used {directory} instead")
            return Located(directory, files, label, notes)
        looked.append(f"{label} {directory}: {problem}")
    blocked = downloads_blocked()
    if download and spec.mirrors and blocked is not None:
        looked.append(f"download: off ({blocked}; unset it to download from {spec.mirrors[0]})")
    elif download and spec.mirrors:
        dest = download_dir(spec, data_dir)
        try:
            return _download(spec, dest, timeout)
        except ChecksumError:
            raise
        except (DownloadError, DataError) as exc:
            looked.append(f"download to {dest}: {exc}")
    elif not spec.mirrors:
        looked.append("download: this dataset has no public mirror")
    else:
        looked.append("download: disabled (--no-download)")
    places = "\n  ".join(looked)
    raise DataNotFoundError(
        f"dataset {spec.name!r} not found. Looked in, in order:\n  {places}\n"
        f"Expected: {expected_files(spec)}.\n"
        f"Put the files in one of these places or pass --data-dir DIR"
        + (" (or use --data mnist-sample, which ships with cnnbench)" if spec.kind == "digits" else "")
    )


def _download(spec: DatasetSpec, dest: Path, timeout: float) -> Located:
    notes: list[str] = []
    if spec.archive is not None:
        archive = dest / spec.archive.name
        result = download_file([m + spec.archive.name for m in spec.mirrors], archive, spec.archive.md5, timeout)
        notes.append(f"downloaded {result.url} ({result.size:,} bytes, md5 verified) to {archive}")
        if spec.format == "folder":
            root = _extract(archive, dest)
            archive.unlink(missing_ok=True)
            notes.append(f"extracted to {root}")
            return Located(dest, {"root": root}, "download", notes)
        return Located(dest, {spec.archive.name: archive}, "download", notes)
    files: dict[str, Path] = {}
    for f in spec.files:
        target = dest / f.name
        if target.is_file() and md5_of(target) == f.md5:
            files[f.name] = target  # an earlier, interrupted download got this one already
            continue
        result = download_file([m + f.name for m in spec.mirrors], target, f.md5, timeout)
        files[f.name] = result.path
        notes.append(f"downloaded {result.url} (md5 verified)")
    return Located(dest, files, "download", notes)


def _extract(archive: Path, dest: Path) -> Path:
    """Extract a tar safely (no absolute paths, links out of ``dest``) and return the class root."""
    try:
        with tarfile.open(archive) as tar:
            try:
                tar.extractall(dest, filter="data")
            except TypeError:  # Python < 3.10.12 has no filter argument
                for member in tar.getmembers():
                    target = (dest / member.name).resolve()
                    if not str(target).startswith(str(dest.resolve())) or member.issym() or member.islnk():
                        raise DataError(f"{archive}: member {member.name} points outside {dest}") from None
                tar.extractall(dest)
    except (tarfile.TarError, EOFError) as exc:
        raise DataError(f"{archive}: cannot extract ({exc})") from None
    except OSError as exc:
        raise OutputError(f"cannot extract {archive} into {dest}: {exc.strerror or exc}") from None
    for candidate in (dest / "256_ObjectCategories", dest):
        if candidate.is_dir() and any(_CALTECH_CLASS.match(p.name) for p in candidate.iterdir()):
            return candidate
    raise DataError(f"{archive}: extracted, but no class folders (NNN.name/) were found in {dest}")


def probe_download(spec: DatasetSpec, timeout: float) -> str | None:
    """The first mirror URL that answers within ``timeout`` seconds in all, else None."""
    first = spec.archive.name if spec.archive else spec.files[0].name
    return reachable([m + first for m in spec.mirrors], timeout)
