"""cnnbench eval: evaluate a run directory or checkpoint."""

from __future__ import annotations

import argparse

from cnnbench.cli.common import add_json_flag, emit_json, note, print_fields
from cnnbench.rundir import SPLITS
from cnnbench.rundir.layout import PREDICTIONS_FILE, SUMMARY_FILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="RUN_DIR|CKPT", help="a run directory (uses its best checkpoint) or a .pt file")
    parser.add_argument("--data", default=None, help="dataset to evaluate on (default: the run's own)")
    parser.add_argument("--data-dir", default=None, help="directory holding the dataset files")
    parser.add_argument("--split", default="test", choices=SPLITS, help="split (default: test)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: the run's test batch size)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--save-predictions",
        action="store_true",
        help=f"write the per-image test predictions into RUN_DIR ({PREDICTIONS_FILE}, which the report's paired "
        "tests read), for a run trained before the file existed; the run's own test split only, and nothing is "
        f"written when the accuracy differs from its {SUMMARY_FILE}",
    )
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from cnnbench.engine.evaluate_run import evaluate_run

    result = evaluate_run(
        args.path,
        data=args.data,
        data_dir=args.data_dir,
        split=args.split,
        batch_size=args.batch_size,
        device=args.device,
        save_predictions=args.save_predictions,
    )
    for line in result.get("notes", []):
        note(f"note: {line}", markup=False)
    if args.json:
        emit_json(result)  # full precision
    else:
        print_fields(f"{result['checkpoint']} on {result['dataset']} ({result['split']})", eval_fields(result))
    return 0


def eval_fields(result: dict) -> list[tuple[str, str]]:
    """The figures of ``evaluate_run`` rounded as the report's results table rounds them."""
    from cnnbench.report.tables import fmt_number

    def fmt(key: str, kind: str) -> str:
        value = result.get(key)
        return "—" if value is None else fmt_number(value, kind)

    return [
        ("accuracy (%)", fmt("accuracy", "pct")),
        ("top-5 (%)", fmt("top5", "pct")),
        ("mean class accuracy (%)", fmt("mean_class_accuracy", "pct")),
        ("loss", fmt("loss", "loss")),
        ("samples", f"{result['samples']:,}"),
        ("seconds", fmt("seconds", "seconds")),
        ("batch size", str(result["batch_size"])),
        ("device", str(result["device"])),
        *([("predictions written to", result["predictions"])] if result.get("predictions") else []),
    ]
