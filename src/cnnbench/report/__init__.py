"""The study report: result files in, tables, figures, HTML and Markdown out.

Reads only files (run directories, CSV, JSON, NPZ) and never imports torch, so ``cnnbench report``
starts fast and the report can be rebuilt on any machine from the study directories alone.

    collect(study_dirs) -> Results            # one row per run (summary.json + speed files)
    write_results(results, out_dir)           # results.csv + aggregate.csv, atomically
    update_results(study_dir)                 # collect + write_results of one study (after every run)
    build_report(study_dirs, out_dir)         # the above + report.html, report.md, figures/
"""

from cnnbench.report.build import ReportPaths, build_report, update_results
from cnnbench.report.collect import collect
from cnnbench.report.records import RESULT_COLUMNS, Results, RunRecord
from cnnbench.report.results_csv import ResultsFiles, write_results

__all__ = [
    "RESULT_COLUMNS",
    "ReportPaths",
    "Results",
    "ResultsFiles",
    "RunRecord",
    "build_report",
    "collect",
    "update_results",
    "write_results",
]
