"""cnnbench run: run a study (datasets × models × schedules × seeds), then write its report."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from typing import TYPE_CHECKING

from cnnbench.cli.common import add_json_flag, add_threads_flag, emit_json, note
from cnnbench.cli.trainflags import add_train_flags, given_train_flags

if TYPE_CHECKING:  # annotations only: the study code is imported when a command runs
    from pathlib import Path

    from cnnbench.study import StudyResult, StudySpec

PER_RUN = {"model", "data", "schedule", "seed"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run a study and write its report. With no arguments: the default study on data that is always "
        "there (MNIST when found or downloadable, else the bundled 5,000-digit sample) — the quick preset on "
        "a CPU, mnist-study-fast (the MNIST study at batch 512) on a GPU."
    )
    parser.add_argument("study_file", nargs="?", metavar="STUDY.yaml", help="study definition file (optional)")
    parser.add_argument(
        "--preset",
        default=None,
        help="quick, mnist-study, mnist-study-fast or caltech-transfer; none: no preset, train's defaults "
        "(default without a study file: quick on a CPU, mnist-study-fast on a GPU)",
    )
    parser.add_argument("--data", default=None, help="datasets, comma-separated")
    parser.add_argument("--models", "-m", default=None, help="model names and groups, comma-separated")
    parser.add_argument("--schedules", default=None, help="lr schedules, comma-separated (none,cosine,plateau,...)")
    parser.add_argument("--seeds", default=None, help="number of seeds (3 → 0,1,2) or a list (1,5)")
    parser.add_argument("--out", "-o", default=None, help="study directory (default: studies/<study name>)")
    parser.add_argument("--shard", default=None, metavar="i/n", help="run only slice i of n (0-based) of the runs")
    parser.add_argument("--workers", default=None, help="concurrent runs: a number or auto (default: auto)")
    parser.add_argument("--embed", action=argparse.BooleanOptionalAction, default=None, help="feature analysis")
    parser.add_argument("--speed", action=argparse.BooleanOptionalAction, default=None, help="speed per model")
    parser.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=None, help="ONNX Runtime latency")
    parser.add_argument("--pretrained-dir", default=None, help="directory of pretrained weight files (docs/models.md)")
    parser.add_argument("--embed-max-points", type=int, default=None, help="test points through t-SNE per model")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the runs, train nothing")
    add_json_flag(parser)
    add_threads_flag(parser)
    add_train_flags(parser, exclude=PER_RUN)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnbench.study import run_study
    from cnnbench.study.flags import check_workers_flag, parse_shard
    from cnnbench.utils.io import check_dir_path

    flags = _study_flags(args)
    workers = check_workers_flag(args.workers)
    shard = parse_shard(args.shard)
    spec = _spec(args, flags)
    out = Path(args.out) if args.out else Path("studies") / spec.name
    check_dir_path(out, "--out")  # a dry run refuses what the run would refuse
    if args.dry_run:
        return _dry_run(spec, out, shard, args.json)
    from cnnbench.report import update_results

    command = "cnnbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    log = (lambda m: None) if args.json else note
    result = run_study(
        spec,
        out,
        shard=shard,
        workers=workers,
        command=command,
        log=log,
        on_results=update_results,
        on_finished=lambda done: _write_report(done, out),  # under the study's lock
    )
    if result.interrupted:
        from cnnbench.engine.stop import EXIT_CODES

        if args.json:
            emit_json(result.to_dict())
        note(f"results so far: {out / 'results.csv'}")
        return EXIT_CODES.get(result.interrupted, 1)
    # no report for a stopped study (a scheduler's grace period is short); the same command resumes it
    _print_finished(result, out, args.json)
    return 0


def _spec(args: argparse.Namespace, flags: dict):
    """The study: a study file or preset with the flags over it, or the default study narrowed by them."""
    from cnnbench.study import default_study_values, resolve_spec
    from cnnbench.study.spec import validate_study

    preset, message = args.preset, None
    if args.study_file is None and preset is None:
        # the default study, narrowed or changed by whatever flags were given (--models a,b: the same
        # study on fewer models); --preset none leaves every value to train's defaults and the flags
        preset, extra, message = default_study_values(data_dir=args.data_dir, data_given=bool(flags.get("data")))
        flags = {**extra, **flags}
    spec = resolve_spec(None if preset == "none" else preset, args.study_file, flags)
    if message:
        validate_study(spec)  # the recipe flags too (cheap): a typo's one-line error is not buried under the line
        note(message)
    return spec


def _study_flags(args: argparse.Namespace) -> dict:
    """The study-level flags given on the command line, as ``resolve_spec`` takes them (recipe flags under "recipe")."""
    flags: dict = {}
    for key in ("data", "models", "schedules", "seeds", "embed", "speed", "onnx", "embed_max_points", "pretrained_dir"):
        value = getattr(args, key)
        if value is not None:
            flags[key] = value
    if flags.get("models"):
        from cnnbench.models import resolve_model_names

        resolve_model_names(flags["models"])  # a typo is named before the data is looked for (and mirrors asked)
    if args.data_dir is not None:
        flags["data_dir"] = args.data_dir
    recipe = {k: v for k, v in given_train_flags(args).items() if k not in PER_RUN and k != "data_dir"}
    if recipe:
        flags["recipe"] = recipe
    return flags


def _dry_run(spec: StudySpec, out: Path, shard: tuple[int, int] | None, as_json: bool) -> int:
    """List the runs the study would write (run ids, or the JSON plan with ``--json``); trains nothing."""
    from cnnbench.rundir import recipe_hash
    from cnnbench.study.plan import plan_runs, shard_runs
    from cnnbench.study.spec import validate_study

    runs = shard_runs(plan_runs(spec, validate_study(spec)), shard)
    hashes = sorted({recipe_hash(r.config.to_dict()) for r in runs})
    if as_json:
        emit_json(
            {
                "out_dir": str(out),
                "preset": spec.preset,
                "recipe_hashes": hashes,
                "deviations": spec.deviations,
                "runs": [{**r.to_dict(), "recipe_hash": recipe_hash(r.config.to_dict())} for r in runs],
            }
        )
    else:
        for r in runs:
            print(r.run_id)
        note(f"{len(runs)} run(s) under {len(hashes)} recipe(s) would be written under {out}/runs")
        for line in dict.fromkeys(_recipe_line(r.config) for r in runs):
            note(f"recipe: {line} (--json: every value)")
    return 0


def _recipe_line(cfg) -> str:
    """What a run does, in a line: batch, learning rate (or its range test), schedule, length, stop rule."""
    lr = f"lr auto ({cfg.lr_find_steps}-step range test)" if cfg.lr == "auto" else f"lr {cfg.lr:g}"
    warmup = f"{cfg.warmup_epochs:g}-epoch warm-up, then " if cfg.warmup_epochs else ""
    length = f"at most {cfg.max_steps} steps" if cfg.max_steps else f"{cfg.epochs} epochs"
    parts = [f"batch {cfg.batch_size}", f"{cfg.optimizer} {lr}", f"{warmup}{cfg.schedule}", length]
    if cfg.stop_at_target and cfg.target_accuracy:
        every = f"every {cfg.val_every_steps} steps" if cfg.val_every_steps else "every epoch"
        parts.append(f"stops at {cfg.target_accuracy:.0%} validation accuracy (checked {every})")
    return ", ".join(parts)


def _write_report(result: StudyResult, out: Path) -> None:
    """Write the finished study's report; its paths go into ``result.report``."""
    from cnnbench.report import build_report

    paths = build_report([out], out)
    result.report = {k: str(v) for k, v in dataclasses.asdict(paths).items()}
    result.seconds += paths.seconds


def _print_finished(result: StudyResult, out: Path, as_json: bool) -> None:
    """Print the finished study's result (``--json``) or a summary with where its report is."""
    from cnnbench.rundir import Status

    if as_json:
        emit_json(result.to_dict())
    else:
        failed = [r for r in result.runs if r.get("status") in (Status.FAILED, Status.DIVERGED)]
        runs = f"{len(result.runs)} run" + ("" if len(result.runs) == 1 else "s")
        note(f"study finished in {result.seconds:.0f} s: {runs} ({len(failed)} failed or diverged)")
        note(f"results: {out / 'results.csv'}")
        for key in ("html", "markdown"):
            if key in result.report:
                note(f"report:  {result.report[key]}")
