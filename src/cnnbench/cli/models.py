"""``cnnbench models [PATTERN]``: the registered models, their source, size, default input and groups."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnbench.cli.common import add_json_flag

    parser.add_argument(
        "pattern",
        nargs="?",
        default="*",
        help="fnmatch pattern ('mobilenet*'), a group (seed-mnist, seed-caltech, classic, lightweight) "
        "or a comma list of names and groups; default: all",
    )
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from cnnbench.cli.common import emit_json, note, print_table
    from cnnbench.models import list_models, model_groups, model_info, resolve_model_names

    pattern = args.pattern.strip()
    if any(ch in pattern for ch in "*?[") and "," not in pattern:
        names = list_models(pattern)  # a pattern matching nothing is an empty listing, not an error
    else:
        names = resolve_model_names(pattern)
    infos = [model_info(n) for n in names]
    if args.json:
        emit_json({"models": [i.to_dict() for i in infos], "groups": model_groups()})
        return 0
    if not infos:
        note(f"no registered model matches {pattern!r}; run 'cnnbench models' to list all")
        return 0
    rows = [
        [
            i.name,
            i.source,
            f"{i.params / 1e6:.2f}M",
            "x".join(map(str, i.default_input)),
            ", ".join(i.groups),
        ]
        for i in infos
    ]
    print_table(
        f"{len(infos)} model(s); params at the default input (1000 classes; lenet5: 10)",
        ["model", "source", "params", "default input", "groups"],
        rows,
    )
    note("pretrained weight files and the layer table: 'cnnbench models NAME --json', 'cnnbench summary NAME'")
    return 0
