"""Write the "Goals at a glance" table of docs/benchmarks.md from the result files of ``run_all.py``.

    python benchmarks/render.py              # benchmarks/results/<device>/*.json → docs/benchmarks.md
    python benchmarks/render.py --check      # exit 1 if the page's table is not what the results say

One row per goal of ``goals.py``, in that order: the latest figure measured for it (by the result's
date; smoke runs, failures and skipped parts are never shown), met or not, when, on what host and at
which commit, and a link to the section that keeps its earlier figures. Only the text between the two
marker comments is rewritten; the same results always give the same table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from goals import GOALS, Goal  # noqa: E402

BEGIN = "<!-- goals-table:begin (written by benchmarks/render.py from benchmarks/results: edit those, not this) -->"
END = "<!-- goals-table:end -->"
HEADER = (
    "| Issue | Goal | Device | Latest figure | Status | Measured (date, host, commit) | History |",
    "|---|---|---|---|---|---|---|",
)
SHOWN = ("ok", "partial")


def load_records(folder: Path) -> list[dict]:
    """Every measured result under ``folder`` (``<device>/<part>.json``), in a fixed order."""
    records = []
    for path in sorted(folder.glob("*/*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"render: {path}: unreadable, left out ({exc})", file=sys.stderr)
            continue
        if record.get("status") in SHOWN and not record.get("env", {}).get("smoke", False):
            records.append(record)
    return records


def latest(records: list[dict]) -> dict[str, tuple[dict, dict]]:
    """Goal key → (its entry, the record holding it), the most recent by date."""
    found: dict[str, tuple[dict, dict]] = {}
    for record in records:
        for entry in record.get("goals", []):
            held = found.get(entry["goal"])
            if held is None or record["date"] > held[1]["date"]:
                found[entry["goal"]] = (entry, record)
    return found


def host(env: dict) -> str:
    cpu = f"{env.get('cpu_model') or 'CPU'} ({env.get('isa', '?')}, {env.get('cores', '?')} cores)"
    return f"{env['gpu']} on {cpu}" if env.get("gpu") else cpu


def status(goal: Goal, entry: dict | None) -> str:
    if entry is None:
        return f"by hand: `{goal.script}`" if goal.by_hand else "not measured by run_all yet"
    if entry["met"] is None:
        return "— (no target)" if goal.target is None else "not judged"
    return "met" if entry["met"] else "**not met**"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def row(goal: Goal, found: tuple[dict, dict] | None) -> str:
    entry, record = found if found else (None, None)
    device = "GPU" if goal.device == "cuda" else "CPU"
    history = f"[history]({goal.history})"
    if record is None:
        cells = [goal.issue, goal.text, device, "—", status(goal, None), "—", history]
    else:
        env = record.get("env", {})
        commit = env.get("git_commit") or "commit not recorded"
        commit = f"`{commit}`" + (" + local changes" if env.get("git_dirty") else "")
        load = record.get("load_before") or [None]
        load_text = f", load {load[0]:.2f}" if load[0] is not None else ""
        measured = f"{record['date'][:10]}, {host(env)}{load_text}, {commit}"
        cells = [goal.issue, goal.text, device, entry["text"], status(goal, entry), measured, history]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def render_table(records: list[dict]) -> str:
    found = latest(records)
    return "\n".join([*HEADER, *(row(g, found.get(g.key)) for g in GOALS)])


def replace_table(page: str, table: str) -> str:
    """The page with the text between the markers replaced by ``table``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page lacks the markers {BEGIN!r} ... {END!r}")
    return page[: start + len(BEGIN)] + "\n" + table + "\n" + page[end:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=BENCH / "results", help="folder of <device>/<part>.json")
    p.add_argument("--doc", type=Path, default=BENCH.parent / "docs" / "benchmarks.md", help="the page to rewrite")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the page's table is out of date")
    args = p.parse_args(argv)
    page = args.doc.read_text(encoding="utf-8")
    try:
        new = replace_table(page, render_table(load_records(args.results)))
    except ValueError as exc:
        raise SystemExit(f"render: {args.doc}: {exc}") from None
    if args.check:
        if new != page:
            print(f"render: {args.doc}'s table is not what {args.results} says: run benchmarks/render.py")
            return 1
        return 0
    if new != page:
        args.doc.write_text(new, encoding="utf-8")
    print(f"render: {args.doc} {'rewritten' if new != page else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
