"""The run report: exact counts, the conservation check, what the refinement did (verdicts,
replaced values, why the model's rewrites failed, lengths, diversity, throughput over time)
and before/after samples, as report.json and a self-contained report.html rendered from it.

  aggregates.py  the CombineFn over the job's outputs and the report dict it builds
  diversity.py   distinct-n, gzip ratio, near-duplicate rate (embedding-free)
  timeline.py    throughput over time through Beam counters
  diffs.py       word-level before/after diffs
  charts.py      inline SVG charts
  page.py        report.html from the report dict
  transform.py   RunReport (the Beam transform), write_report / read_report
"""

from gdr_beam.report.aggregates import add_generated_tokens, add_runner_metrics, build_report
from gdr_beam.report.diffs import changed_spans, diff_segments
from gdr_beam.report.page import render_html
from gdr_beam.report.transform import (REPORT_HTML, REPORT_JSON, RunReport, read_report,
                                       write_report)

__all__ = ["REPORT_HTML", "REPORT_JSON", "RunReport", "add_generated_tokens",
           "add_runner_metrics", "build_report", "changed_spans", "diff_segments",
           "read_report", "render_html", "write_report"]
