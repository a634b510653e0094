"""Scan a class-per-folder image tree (Caltech-256 layout or any ``imagefolder:PATH``).

Class folders are the immediate sub-directories, sorted by name. Inside a class folder only
files with an image extension count; other files (``RENAME2``, ``.DS_Store``, notes) and nested
folders are ignored, and counted so the data report can say so. A class folder without images
is left out and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnnbench.errors import DataError, DataNotFoundError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)


@dataclass
class FolderScan:
    """Image files of a tree, by class.

    Attributes:
        files: paths relative to ``root`` ("001.ak47/001_0001.jpg"), sorted by class then name.
        labels: class index of each file (into ``classes``).
        sizes, mtimes: per file, for the cache key (a changed file changes the key).
    """

    root: Path
    classes: list[str]
    files: list[str]
    labels: list[int]
    sizes: list[int]
    mtimes: list[int]
    empty_classes: list[str] = field(default_factory=list)
    ignored_files: int = 0
    ignored_dirs: int = 0


def scan_folder(root: str | Path, where: str = "--data-dir") -> FolderScan:
    """List the class folders and image files under ``root``.

    Raises:
        DataNotFoundError: ``root`` does not exist.
        DataError: ``root`` has no class folder with any image.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(
            f"{where} {root}: {'does not exist' if not root.exists() else 'is not a directory'}; "
            "expected a directory with one sub-folder of images per class"
        )
    classes, files, labels, sizes, mtimes, empty = [], [], [], [], [], []
    ignored_files = ignored_dirs = 0
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = []
        for entry in sorted(class_dir.iterdir(), key=lambda p: p.name):
            if entry.is_dir():
                ignored_dirs += 1
            elif entry.suffix.lower() in IMAGE_EXTENSIONS and not entry.name.startswith("."):
                try:
                    st = entry.stat()
                except OSError:  # a dangling symlink or a symlink loop: decoding lists it as a skip
                    found.append((entry.name, -1, 0))
                    continue
                found.append((entry.name, st.st_size, st.st_mtime_ns))
            else:
                ignored_files += 1
        if not found:
            empty.append(class_dir.name)
            continue
        label = len(classes)
        classes.append(display_name(class_dir.name))
        for name, size, mtime in found:
            files.append(f"{class_dir.name}/{name}")
            labels.append(label)
            sizes.append(size)
            mtimes.append(mtime)
    if not files:
        detail = f" (empty class folders: {', '.join(empty[:5])})" if empty else ""
        raise DataError(
            f"{where} {root}: no images found{detail}; expected sub-folders of images "
            f"({', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return FolderScan(root, classes, files, labels, sizes, mtimes, empty, ignored_files, ignored_dirs)


def display_name(name: str) -> str:
    """A file or folder name as text that can be printed, drawn and written as UTF-8.

    A name that is not valid UTF-8 (from a Windows or Latin-1 archive) reaches Python with surrogate
    escapes, which no UTF-8 writer, terminal or font accepts; its undecodable bytes are shown as
    ``\\xe9``. Files are still opened by their real names; only class names shown to people use this.
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def has_predefined_split(root: Path) -> bool:
    """True when ``root`` holds ``train/`` and ``test/`` (or ``val/``) sub-trees instead of class folders."""
    return (root / "train").is_dir() and ((root / "test").is_dir() or (root / "val").is_dir())
