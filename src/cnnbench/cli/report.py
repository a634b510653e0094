"""``cnnbench report STUDY_DIR [STUDY_DIR ...] [--out DIR]``: the HTML/Markdown report of a study.

Several study directories (the shards of one study, run on different machines) merge into one
report; each run is kept once, by run_id.
"""

from __future__ import annotations

import argparse

from cnnbench.cli.common import add_json_flag, emit_json, note, print_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study_dirs",
        nargs="+",
        metavar="STUDY_DIR",
        help="study directory (runs/<run_id>/ inside), or several shards of one study to merge",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="where to write report.html, report.md, figures/, results.csv, aggregate.csv "
        "(default: the study directory; required with several)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop on an unreadable result file instead of listing it in the report",
    )
    parser.add_argument("--title", help="page title (default: names the datasets)")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from cnnbench.report import build_report, collect
    from cnnbench.report.build import default_out_dir

    out = default_out_dir(args.study_dirs, args.out)  # fails fast on several dirs without --out
    results = collect(args.study_dirs, strict=args.strict)
    for problem in results.problems:
        note(f"warning: {problem}")
    paths = build_report(args.study_dirs, out, strict=args.strict, title=args.title, results=results)
    if args.json:
        emit_json(paths.to_dict())
        return 0
    _print_model_tables(results, paths)
    bad = [r for r in results.runs if not r.ok]
    if bad:
        print_table(
            f"{len(bad)} runs did not finish",
            ["run", "status", "error"],
            [[r.run_id, r.status, r.error or ""] for r in bad],
        )
    print_table(
        f"report written in {paths.seconds:.1f} s",
        ["file", "path"],
        [
            ["HTML", paths.html],
            ["Markdown", paths.markdown],
            ["figures", f"{paths.figures_dir} ({len(paths.figures)} PNG)"],
            ["results", paths.results_csv],
            ["aggregate", paths.aggregate_csv],
        ],
    )
    return 0


def _print_model_tables(results, paths) -> None:
    """Per dataset: one row per model (its best schedule), mean ± std over seeds, and the findings line."""
    from cnnbench.report.aggregate import aggregate, select_schedules
    from cnnbench.report.tables import fmt_stat

    chosen = select_schedules(aggregate(results.runs))
    header = ["model", "schedule", "seeds", "test acc (%)", "95 % interval", "test loss", "params", "size (MB)"]
    for dataset in results.datasets():
        rows = [row for (d, _), row in sorted(chosen.items()) if d == dataset]
        stats = paths.statistics.get(dataset, {})
        intervals = {m["model"]: m["interval"] for m in stats.get("models", []) if m.get("interval")}
        print_table(
            f"{dataset}: one row per model (schedule with the best validation accuracy), mean ± std over seeds",
            [*header, "train time (s)"],
            [
                [
                    r.model,
                    r.schedule,
                    f"{r.ok}/{r.runs}",
                    fmt_stat(r.stats["test_accuracy"], "pct"),
                    _interval_text(intervals.get(r.model)),
                    fmt_stat(r.stats["test_loss"], "loss"),
                    fmt_stat(r.stats["params"], "count"),
                    fmt_stat(r.stats["size_mb"], "mb"),
                    fmt_stat(r.stats["train_time_s"], "seconds"),
                ]
                for r in rows
            ],
        )
        finding = stats.get("summary") or next(iter(stats.get("notes") or []), "")
        if finding and len(rows) > 1:
            print(f"{dataset}: {finding}")


def _interval_text(interval: dict | None) -> str:
    """``[91.52, 93.21]``: a 95 % interval of the report's JSON, in percent."""
    from cnnbench.report.tables import fmt_number

    return f"[{fmt_number(interval['low'], 'pct')}, {fmt_number(interval['high'], 'pct')}]" if interval else ""
