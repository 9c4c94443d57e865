"""`RunReport`: the run report as a Beam transform, and report.json / report.html on disk.

`RunReport` takes a dict of PCollections:

    {"records": read.records,             # inputs that were read (ReadRecords.records)
     "read_dead_letter": read.dead_letter, # inputs that could not be (ReadRecords.dead_letter)
     "dead_letter": later_dead,            # DeadLetters of every later stage (refine, write)
     "refined": refine.refined,            # the records written, for the samples
     "files": written.files,               # the output shards (WriteRefined.files)
     "filtered": ..., "deduplicated": ...} # optional: records dropped on purpose

and writes `report.json` and `report.html` (rendered from the JSON dict alone) to the output
directory. The conservation check is

    inputs = outputs + filtered + deduplicated + dead_letters

where inputs = records + read dead letters (every input example leaves ReadRecords as exactly
one of the two), dead_letters = read + later dead letters, and outputs = the examples found in
the written shards, read back from disk. The two dead-letter inputs are kept apart so that a
later stage's dead letter of stage `read` (Refine re-normalises its input) is not mistaken for
an input.
"""

from __future__ import annotations

import json
import time
from typing import Mapping, Optional

import apache_beam as beam
from absl import logging
from apache_beam.io.filesystems import FileSystems

from gdr_beam.report import aggregates
from gdr_beam.report.page import render_html

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


class _Finish(beam.DoFn):
    def __init__(self, output_dir: str, config: Mapping, started_at: Optional[float]):
        self._output_dir = output_dir
        self._config = dict(config)
        self._started_at = started_at

    def process(self, acc, originals, files):
        elapsed = None if self._started_at is None else time.time() - self._started_at
        report = aggregates.build_report(acc, originals, config=self._config, files=files,
                                         elapsed_s=elapsed)
        report["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_report(report, self._output_dir)
        yield report


class RunReport(beam.PTransform):
    """dict of PCollections (see the module docstring) -> the report dict, also written.

    `config` goes into the report as is (task, model, flags...). `started_at` (time.time() when
    the job was launched) makes the throughput figures: they span the whole job, start-up,
    model loading and compilation included, since that is what a run costs.
    """

    def __init__(self, output_dir: str, *, config: Optional[Mapping] = None,
                 started_at: Optional[float] = None, samples_per_verdict: int = 5,
                 dead_samples_per_reason: int = 3,
                 diversity_sample: int = aggregates.DIVERSITY_SAMPLE):
        super().__init__()
        self._output_dir = output_dir.rstrip("/")
        self._config = dict(config or {})
        self._started_at = started_at
        self._k = samples_per_verdict
        self._dead_k = dead_samples_per_reason
        self._div_k = diversity_sample

    def expand(self, pcolls):
        unknown = set(pcolls) - {"records", "read_dead_letter", "dead_letter", "refined",
                                 "files", "filtered", "deduplicated"}
        if unknown:
            raise ValueError(f"RunReport: unknown inputs {sorted(unknown)}")
        missing = {"records", "read_dead_letter", "dead_letter", "files"} - set(pcolls)
        if missing:
            raise ValueError(f"RunReport: missing inputs {sorted(missing)}")
        tagged = [pcolls["records"] | "TagRecords" >> beam.Map(aggregates.tag_record),
                  pcolls["read_dead_letter"]
                  | "TagReadDead" >> beam.Map(aggregates.tag_dead("read_dead")),
                  pcolls["dead_letter"] | "TagDead" >> beam.Map(aggregates.tag_dead("dead")),
                  pcolls["files"] | "CountWritten" >> beam.FlatMap(aggregates.count_written)]
        if "refined" in pcolls:
            tagged.append(pcolls["refined"] | "TagRefined" >> beam.Map(aggregates.tag_refined))
        for kind in ("filtered", "deduplicated"):
            if kind in pcolls:
                tagged.append(pcolls[kind]
                              | f"Tag_{kind}" >> beam.Map(aggregates.tag_dropped(kind)))
        acc = (tagged | "Merge" >> beam.Flatten()
               | "Combine" >> beam.CombineGlobally(
                   aggregates.ReportFn(self._k, self._dead_k, self._div_k)))
        # The originals of the sampled records only: a side-input filter, not a join, so the
        # full dataset is never shuffled for a report that looks at a few hundred examples.
        ids = acc | "SampleIds" >> beam.Map(aggregates.sample_ids)
        originals = (pcolls["records"]
                     | "PickOriginals" >> beam.Filter(lambda r, ids: r["id"] in ids,
                                                      ids=beam.pvalue.AsSingleton(ids))
                     | "OriginalText" >> beam.Map(lambda r: (r["id"], r["text"]))
                     | "Originals" >> beam.combiners.ToDict())
        files = pcolls["files"] | "FileList" >> beam.combiners.ToList()
        return acc | "Write" >> beam.ParDo(
            _Finish(self._output_dir, self._config, self._started_at),
            originals=beam.pvalue.AsSingleton(originals), files=beam.pvalue.AsSingleton(files))


def write_report(report: Mapping, output_dir: str, log: bool = True) -> tuple:
    """report.json + report.html (rendered from the same dict) in output_dir (local or any
    Beam filesystem)."""
    json_path = FileSystems.join(output_dir, REPORT_JSON)
    html_path = FileSystems.join(output_dir, REPORT_HTML)
    for path, data in ((json_path, json.dumps(report, indent=2, sort_keys=True,
                                              ensure_ascii=False) + "\n"),
                       (html_path, render_html(report))):
        with FileSystems.create(path) as f:
            f.write(data.encode("utf-8"))
    if log:
        logging.info("Run report: %s (%s)", json_path, report.get("balance"))
    return json_path, html_path


def read_report(output_dir: str) -> dict:
    with FileSystems.open(FileSystems.join(output_dir, REPORT_JSON)) as f:
        return json.loads(f.read().decode("utf-8"))
