"""cnnbench train: train one model and write a run directory."""

from __future__ import annotations

import argparse

from cnnbench.cli.common import add_json_flag, add_threads_flag, emit_json, note
from cnnbench.cli.trainflags import add_train_flags, given_train_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        "--output",
        "-o",
        default=None,
        help="run directory (default: runs/<data>__<model>__<schedule>__s<seed>)",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue the run in --out (or RUN_DIR) from its last checkpoint",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="--out holds another run: move it aside to <parent>/.replaced/ and start a new one",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate the flags and print the resolved recipe; train nothing"
    )
    add_json_flag(parser)
    add_threads_flag(parser)
    add_train_flags(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnbench.engine import TrainConfig, fit
    from cnnbench.engine.stop import STOP
    from cnnbench.rundir import STATUS_OK, RunId, Status

    values, given = _values(args)
    if args.json:
        values["progress"] = False
    if "model" in values:
        from cnnbench.models import canonical_model_name

        values["model"] = canonical_model_name(values["model"])  # the seed's names: lenet, shufflenetv2, ...
    cfg = _config(TrainConfig, values, given, Path(args.out) if args.resume and args.out else None)
    out = Path(args.out) if args.out else Path("runs") / str(RunId(cfg.data, cfg.model, cfg.schedule, cfg.seed))
    if args.dry_run:
        return _dry_run(cfg, out, args.json)
    if args.resume:
        if not out.exists():
            from cnnbench.errors import ConfigError

            raise ConfigError(f"--resume: {out} does not exist, so there is no run to continue (drop --resume)")
        finished = _finished(out, given)
        if finished is not None:
            if args.json:
                emit_json(finished)
            return 0
    from cnnbench.utils.io import removed_if_left_empty

    with removed_if_left_empty(out):  # refused before any file was written (bad --pretrained): no empty --out
        summary = fit(cfg, out, resume=bool(args.resume), overwrite=args.overwrite)  # --json: lines on stderr
    if args.json:
        emit_json(summary)
    status = summary["status"]
    if status in STATUS_OK:
        return 0
    # said on stderr whatever the output is (a Slurm log, --json): how the run ended and where it is
    note(f"{cfg.model}: {status}: {summary.get('error') or 'no test pass'} → {out}")
    if status == Status.INTERRUPTED:
        return STOP.exit_code
    return EXIT_DIVERGED if status == Status.DIVERGED else 1


def _values(args: argparse.Namespace) -> tuple[dict, dict]:
    """(the run's values, the flags given): with --resume, the run's own recipe with the given flags over it."""
    from pathlib import Path

    values = given_train_flags(args)
    if isinstance(args.resume, str):
        if args.out and Path(args.out) != Path(args.resume):
            from cnnbench.errors import ConfigError

            raise ConfigError(f"--resume {args.resume} and --out {args.out} name different run directories")
        args.out = args.resume
    given = dict(values)
    if args.resume and args.out and not values:
        values = _config_of(Path(args.out))  # `cnnbench train --resume RUN_DIR`: the run's own recipe
    elif args.resume and args.out:
        saved = _config_of(Path(args.out))
        _check_fixed_on_resume(Path(args.out), saved, values)
        values = {**saved, **values}
    return values, given


def _config(cls, values: dict, given: dict, resumed):
    """The run's TrainConfig; a bad value that came from a resumed run's config.yaml (damaged or edited) is
    named as that file's key, not as a flag nobody typed."""
    from cnnbench.errors import ConfigError
    from cnnbench.rundir import RunFiles

    try:
        return cls(**values)
    except ConfigError as exc:
        flag, _, rest = str(exc).partition(" ")
        key = {"--time-budget": "time_budget_s"}.get(flag, flag.removeprefix("--").replace("-", "_"))
        if resumed is None or not flag.startswith("--") or key in given:
            raise
        raise ConfigError(f"{RunFiles(resumed).config}: {key} {rest}") from None


def _dry_run(cfg, out, as_json: bool) -> int:
    """--dry-run: the resolved recipe and where the run would go; nothing trained."""
    from cnnbench.models import get_spec
    from cnnbench.rundir import recipe_hash
    from cnnbench.utils.io import check_dir_path

    get_spec(cfg.model)
    check_dir_path(out, "--out")  # what the run would refuse
    plan = {"out_dir": str(out), "recipe_hash": recipe_hash(cfg.to_dict()), "config": cfg.to_dict()}
    if as_json:
        emit_json(plan)
    else:
        for key, value in plan["config"].items():
            print(f"{key}: {value}")
        note(f"would write {out} (recipe {plan['recipe_hash']}); nothing trained")
    return 0


EXIT_DIVERGED = 3  # docs/reliability.md: 0 finished, 1 failed, 2 bad input, 3 diverged, 130/143 interrupted


def _config_of(run_dir, quiet: bool = False):
    from cnnbench.checkpoints import open_run
    from cnnbench.engine.config import train_config_fields

    run = open_run(run_dir)
    for line in [] if quiet else run.notes:  # keys added by hand are ignored by --resume: said, not silent
        note(f"note: {line}", markup=False)
    return {k: v for k, v in run.config.items() if k in train_config_fields()}


# What a checkpoint already fixed: --resume with another value would record a recipe the run never trained with
# (more --epochs or steps, or a later --patience, can extend a run; these cannot change it). A new target
# would count its steps from the resume, not from the run's first pass.
FIXED_ON_RESUME = (
    "lr", "lr_find_steps", "batch_size", "optimizer", "seed", "schedule", "weight_decay", "target_accuracy",
)  # fmt: skip


def _finished(out, given: dict) -> dict | None:
    """A finished run that ``--resume`` would not extend: said, and its summary returned (nothing is written).

    Before, it trained on from its last checkpoint: a run stopped at its target lost its result at the target.
    """
    from cnnbench.errors import CnnbenchError
    from cnnbench.rundir import STATUS_OK
    from cnnbench.rundir.summary import read_summary_json

    try:
        summary = read_summary_json(out)
    except CnnbenchError:
        return None  # killed before its summary (or it is damaged): resume as ever
    if not isinstance(summary, dict) or summary.get("status") not in STATUS_OK:
        return None
    from cnnbench.engine import TrainConfig

    saved = _config_of(out, quiet=True)
    try:
        changed = TrainConfig(**saved).hash() != TrainConfig(**{**saved, **given}).hash()
    except CnnbenchError:
        changed = True
    if changed:
        return None  # more epochs, steps or patience train on; another model is refused by fit, by name
    acc = summary.get("test_accuracy")
    acc_text = f", test accuracy {acc:.4f}" if isinstance(acc, (int, float)) else ""
    note(
        f"{out}: already finished ({summary['status']}{acc_text}); nothing to do, nothing written "
        f"(more --epochs than its {saved.get('epochs')} trains it further)"
    )
    return summary


def _check_fixed_on_resume(out, saved: dict, given: dict) -> None:
    from cnnbench.engine import TrainConfig
    from cnnbench.errors import CnnbenchError, ConfigError

    try:  # both sides normalised the same way: '3e-3' and 0.003, 'Auto' and 'auto' are one value
        before, after = TrainConfig(**saved), TrainConfig(**{**saved, **given})
    except CnnbenchError:
        return  # the values themselves are wrong: TrainConfig says so below, naming them
    for key in FIXED_ON_RESUME:
        if key in given and getattr(before, key) != getattr(after, key):
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"--resume {out}: that run trains with {key} {getattr(before, key)!r}; {flag} "
                f"{getattr(after, key)!r} cannot change a run in progress (drop the flag, or use another --out)"
            )
