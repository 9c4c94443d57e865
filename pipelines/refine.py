"""The GDR refinement job: read a dataset, rewrite every example with a model, write it for TFDS.

    python -m pipelines.refine --input=gdr_beam/samples/pii_sample.jsonl \
        --output_dir=/tmp/gdr-out --task=pii

Flags this module does not define go to Beam's PipelineOptions, so the same command runs on
any runner, e.g. `--runner=DataflowRunner --project=P --region=R --temp_location=gs://...`.

Writes to --output_dir: `{name}-{split}.tfrecord-XXXXX-of-YYYYY` + TFDS metadata (load with
`tfds.builder_from_directory`), `dead_letters/dead_letter-*.jsonl` (every input example that
failed on its way, with its stage, reason and payload), `dropped/dropped-*.jsonl` (the ones the
quality filters and dedup removed on purpose, the same way) and `report.json` / `report.html`.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # Before Beam, TensorFlow and JAX are imported: some of them log at import time.
    from pipelines import quiet
    quiet.configure(sys.argv)

# pylint: disable=wrong-import-position
import dataclasses
import importlib
import threading
import time
from typing import Optional, Sequence

import apache_beam as beam
from absl import app, flags, logging
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from gdr_beam import report as report_lib
from gdr_beam.report import timeline
from gdr_beam.adapters import AUTO, auto_adapter
from gdr_beam.beam import io as gio
from gdr_beam.beam import survey
from gdr_beam.beam.handler import JaxModelHandler
from gdr_beam.beam.dedup import Deduplicate, NearDedupConfig
from gdr_beam.beam.filters import INPUT_CHECKS, FilterConfig, QualityFilter
from gdr_beam.beam.refine import DEFAULT_SEGMENT_TOKENS, MAX_EXAMPLE_CHARS, Refine
from gdr_beam.tasks import get_task
from gdr_beam.tasks.pii.task import POLICY_TASKS

flags.DEFINE_string("input", None, "Input path or glob (local, gs://, ...), or tfds://name?split=.")
flags.DEFINE_string("output_dir", None, "Where the refined dataset, dead letters and report go.")
flags.DEFINE_enum("input_format", None, ["jsonl", "tfrecord", "tfds"],
                  "Input format; inferred from --input by default.")
flags.DEFINE_string("task", "pii", "Refinement task: pii, secrets, toxicity, or one registered "
                    "by --task_module.")
flags.DEFINE_enum("pii_policy", None, list(POLICY_TASKS),
                  "With --task=pii: what it replaces. direct (the default): direct identifiers "
                  "only; quasi: also dates (one offset per document), towns and regions, "
                  "organisations and ages, rewritten coherently; hipaa_safe_harbor: the Safe "
                  "Harbor kinds (dates but their year, towns, postcodes, ages over 89, record "
                  "numbers). See gdr_beam/tasks/pii/quasi.py.")
flags.DEFINE_list("task_module", [], "Modules to import first that register custom tasks, "
                  "e.g. examples.custom_task (see gdr_beam/tasks/base.py).")
flags.DEFINE_string("adapter", AUTO, "LoRA adapter merged into --model's weights at load: a "
                    "directory written by pipelines.adapt (local or gs://), shipped:TASK, none, "
                    "or auto: the adapter shipped for --task when --model is the embedded "
                    "default, else none (gdr_beam/adapters).")
flags.DEFINE_integer("max_retries", 1, "Times a rewrite that fails verification goes back to "
                     "the model before the deterministic fallback repairs it.")
flags.DEFINE_enum("dedup", "near", ["none", "exact", "near"],
                  "Deduplicate the refined records: exact (normalised text) or exact + near "
                  "(MinHash LSH, verified by true Jaccard).")
flags.DEFINE_float("near_dup_threshold", 0.8, "Word 5-gram Jaccard at which two records are "
                   "near duplicates.")
flags.DEFINE_float("retry_temperature", 0.7, "Sampling temperature of the retries.")
flags.DEFINE_string("text_field", "text", "Input field holding the text to refine.")
flags.DEFINE_string("id_field", "id", "Input field holding the example id (derived when absent).")
flags.DEFINE_string("model", None,
                    "Checkpoint: .gguf or HF safetensors dir, local or gs:// "
                    "(default: the embedded SmolLM2-135M-Instruct).")
flags.DEFINE_integer("max_new_tokens", 256, "Upper bound of each prompt's new-token budget "
                     "(the budget itself comes from the text's length); a longer text is "
                     "rewritten in segments that each fit it.")
flags.DEFINE_integer("segment_tokens", None, "Most text tokens per model prompt: a longer "
                     "text is rewritten in segments at paragraph/sentence boundaries and "
                     f"reassembled (default {DEFAULT_SEGMENT_TOKENS}, what the embedded model "
                     "rewrites best; a larger model may take more).")
flags.DEFINE_integer("max_example_chars", MAX_EXAMPLE_CHARS, "The one hard cap on a text's "
                     "length: a longer one is dropped with reason too_long; any shorter one is "
                     "refined, split into segments when it is too long for one model reply.")
flags.DEFINE_float("temperature", 0.7, "Sampling temperature of the first attempt; 0 = greedy. "
                   "Sampling (seeded per example) keeps the fakes diverse: greedy decoding of "
                   "the shipped pii adapter reuses a few fake values.")
flags.DEFINE_integer("seed", 0, "Run seed; each example's key also folds in its id.")
flags.DEFINE_integer("max_batch_tokens", 8192, "Token budget of one generation batch.")
flags.DEFINE_integer("num_shards", None, "Output shards (default: from the data size).")
flags.DEFINE_string("name", "refined", "Dataset name: the shard file prefix.")
flags.DEFINE_string("split", "train", "Split to write; also the TFDS split read from tfds:// "
                    "inputs that do not name one.")
flags.DEFINE_float("progress_interval", 30.0, "Seconds between progress log lines per worker.")
flags.DEFINE_integer("estimate", 0, "Estimate instead of run: refine a seeded sample of this "
                     "many input records here, count the input, and print the expected "
                     "worker-hours and cost per launcher machine type (approximate; "
                     "launch/prices.json). Also writes OUTPUT_DIR/estimate.json.")
flags.DEFINE_float("estimate_tokens_per_s", None, "With --estimate: the generated tokens/s of "
                   "one accelerator worker to assume instead of launch/prices.json's.")
flags.mark_flags_as_required(["input", "output_dir"])
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class RefineJob:
    """Everything a run needs besides Beam's own options (the flags, as one value)."""
    input: str
    output_dir: str
    task: str = "pii"
    pii_policy: Optional[str] = None  # None = the pii task's default, `direct`
    task_module: tuple = ()
    adapter: Optional[str] = AUTO
    max_retries: int = 1
    retry_temperature: float = 0.7
    dedup: str = "near"
    near_dup_threshold: float = 0.8
    input_format: Optional[str] = None
    text_field: str = "text"
    id_field: str = "id"
    model: Optional[str] = None
    max_new_tokens: int = 256
    max_example_chars: int = MAX_EXAMPLE_CHARS
    segment_tokens: Optional[int] = None
    temperature: float = 0.7
    seed: int = 0
    max_batch_tokens: int = 8192
    num_shards: Optional[int] = None
    name: str = "refined"
    split: str = "train"
    progress_interval: float = 30.0

    def __post_init__(self):
        task_name(self)  # an unknown policy, or a policy with another task, fails at once

    @classmethod
    def from_flags(cls) -> "RefineJob":
        values = {f.name: getattr(FLAGS, f.name) for f in dataclasses.fields(cls)}
        values["task_module"] = tuple(values["task_module"] or ())
        return cls(**values)


def task_name(job: RefineJob) -> str:
    """The registered task the job runs: --task, or with --pii_policy the pii task registered
    for that policy (tasks travel to workers by name)."""
    if job.pii_policy is None:
        return job.task
    if job.task != "pii":
        raise ValueError(f"--pii_policy applies to --task=pii only, not --task={job.task}")
    if job.pii_policy not in POLICY_TASKS:
        raise ValueError(f"unknown --pii_policy {job.pii_policy!r}; expected one of "
                         f"{', '.join(POLICY_TASKS)}")
    return POLICY_TASKS[job.pii_policy]


# --- Progress ---------------------------------------------------------------------------------

class _Totals:
    """Per-process totals, so all threads of a worker log one progress line between them."""
    lock = threading.Lock()
    start: Optional[float] = None
    end: Optional[float] = None
    last_log = 0.0
    examples = 0
    tokens = 0


def reset_progress() -> None:
    with _Totals.lock:
        _Totals.start = _Totals.end = None
        _Totals.last_log = 0.0
        _Totals.examples = _Totals.tokens = 0


def generation_seconds() -> Optional[float]:
    """Wall time from the start of this process's first generated batch to the end of its
    last (None before any): the generation time of an in-process run, loading excluded."""
    with _Totals.lock:
        if _Totals.start is None or _Totals.end is None:
            return None
        return max(_Totals.end - _Totals.start, 1e-3)


class ProgressHandler(JaxModelHandler):
    """The engine's ModelHandler, also logging examples done and tokens/s every `interval` s.

    It sits where the tokens are counted (the generated ids are not in the refined records)
    and where the time goes. Rates are per worker process from the start of its first batch, so
    model loading does not blur them; the run report has the whole-job figures.
    """

    def __init__(self, *args, progress_interval: float = 30.0,
                 started_at: Optional[float] = None, expected_inputs: Optional[int] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self._interval = progress_interval
        self._started_at = started_at
        self._expected = expected_inputs

    def run_inference(self, batch, model, inference_args=None):
        began = time.time()
        results = super().run_inference(batch, model, inference_args)
        now = time.time()
        tokens = sum(r.inference.num_tokens for r in results)
        if self._started_at is not None:  # the report's throughput over time
            timeline.record(self._started_at, now, len(batch), tokens)
        with _Totals.lock:
            if _Totals.start is None:
                _Totals.start = began
                _Totals.last_log = now - self._interval  # log the first batch: it shows life
            _Totals.examples += len(batch)
            _Totals.tokens += tokens
            _Totals.end = now
            due = now - _Totals.last_log >= self._interval
            if due:
                _Totals.last_log = now
                examples, tokens, elapsed = _Totals.examples, _Totals.tokens, now - _Totals.start
        if due:
            elapsed = max(elapsed, 1e-3)
            logging.info("progress: %d examples generated%s, %d tokens in %.0fs from the first "
                         "batch (%.2f examples/s, %.1f tokens/s)%s", examples,
                         f" (retries included; input ~{self._expected:,} records)"
                         if self._expected else "", tokens,
                         elapsed, examples / elapsed, tokens / elapsed,
                         _eta(self._expected, examples, elapsed))
        return results


def _eta(expected: Optional[int], done: int, elapsed: float) -> str:
    """ETA at this process's rate. Retries count as generations too, and with several worker
    processes each sees only its share: a rough figure, labelled as such."""
    if not expected or done <= 0:
        return ""
    left = max(expected - done, 0) * elapsed / done
    return f", ETA ~{_duration(left)} at this process's rate"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _expected_inputs(job) -> Optional[int]:
    """The input's record count for the ETA, cheaply (file sizes + a 4 MB scan, or TFDS
    metadata); None when that fails: progress lines then go without an ETA."""
    try:
        fmt = job.input_format or gio.infer_format(job.input)
        return survey.survey(job.input, fmt, 0, split=job.split if fmt == "tfds" else None,
                             max_scan_bytes=4 << 20).records
    except Exception as e:  # pylint: disable=broad-except  # an ETA is never worth a failure
        logging.info("no input count for the ETA: %s", e)
        return None


# --- The pipeline -----------------------------------------------------------------------------

def build(pipeline, job: RefineJob, started_at: Optional[float] = None):
    """Adds the job's transforms to `pipeline`; returns the report PCollection (one dict)."""
    if job.adapter == AUTO:
        job = dataclasses.replace(job, adapter=auto_adapter(job.task, job.model))
        logging.info("adapter auto -> %s", job.adapter or "none")
    read = pipeline | "Read" >> gio.ReadRecords(
        job.input, job.input_format, text_field=job.text_field, id_field=job.id_field,
        split=job.split if (job.input_format or gio.infer_format(job.input)) == "tfds"
        else None)
    handler = ProgressHandler(job.model, adapter=job.adapter, max_new_tokens=job.max_new_tokens,
                              temperature=job.temperature, max_batch_tokens=job.max_batch_tokens,
                              progress_interval=job.progress_interval, started_at=started_at,
                              expected_inputs=_expected_inputs(job))
    # The adapter above follows --task (a policy's prompt is the pii task's with more kinds);
    # the task that runs follows the policy too.
    task = task_name(job)
    if job.task_module:
        for module in job.task_module:
            importlib.import_module(module)
        # The instance, not the name: it is pickled with the DoFns, so workers import its
        # module when they unpickle it, without a registry of their own.
        task = get_task(task)
    # Cheap input checks first (control characters, loops, length): such a text is dropped
    # with its reason before it takes a generation slot. The output checks stay after.
    # The length bound is max_example_chars on both sides: long texts are refined in segments.
    checked = read.records | "InputChecks" >> QualityFilter(
        dataclasses.replace(INPUT_CHECKS, max_chars=job.max_example_chars), what="input")
    # ReadRecords has already normalised the records to `id` and `text`.
    refine = checked.kept | "Refine" >> Refine(
        task, job.model, model_handler=handler, text_field="text", id_field="id",
        max_new_tokens=job.max_new_tokens, seed=job.seed, max_retries=job.max_retries,
        retry_temperature=job.retry_temperature, max_example_chars=job.max_example_chars,
        segment_tokens=job.segment_tokens)
    filtered = refine.refined | "QualityFilter" >> QualityFilter(
        FilterConfig(max_chars=job.max_example_chars))
    kept = filtered.kept
    all_filtered = ((checked.dropped, filtered.dropped)
                    | "AllFiltered" >> beam.Flatten())
    deduplicated = None
    if job.dedup != "none":
        dedup = kept | "Deduplicate" >> Deduplicate(
            near=NearDedupConfig(threshold=job.near_dup_threshold) if job.dedup == "near"
            else None)
        kept, deduplicated = dedup.kept, dedup.dropped
    refined = kept
    written = refined | "Write" >> gio.WriteRefined(job.output_dir, job.name, job.split,
                                                   job.num_shards)
    # Dropped on purpose, still never silently: each has its DeadLetter (stage filter or
    # dedup, reason, payload) in dropped/, and the report counts them apart from failures.
    drops = [all_filtered] + ([deduplicated] if deduplicated is not None else [])
    _ = (drops | "AllDropped" >> beam.Flatten()
         | "WriteDropped" >> gio.WriteDeadLetters(dropped_dir(job.output_dir),
                                                  prefix="dropped"))
    later_dead = ((refine.dead_letter, written.dead_letter)
                  | "LaterDeadLetters" >> beam.Flatten())
    _ = ((read.dead_letter, later_dead) | "AllDeadLetters" >> beam.Flatten()
         | "WriteDeadLetters" >> gio.WriteDeadLetters(dead_letter_dir(job.output_dir)))
    config = {k: v for k, v in dataclasses.asdict(job).items() if k != "progress_interval"}
    report_inputs = {"records": read.records, "read_dead_letter": read.dead_letter,
                     "dead_letter": later_dead, "refined": refined, "files": written.files,
                     "filtered": all_filtered}
    if deduplicated is not None:
        report_inputs["deduplicated"] = deduplicated
    return (report_inputs
            | "Report" >> report_lib.RunReport(job.output_dir, config=config,
                                              started_at=started_at))


def dead_letter_dir(output_dir: str) -> str:
    return FileSystems.join(output_dir.rstrip("/"), "dead_letters")


def dropped_dir(output_dir: str) -> str:
    return FileSystems.join(output_dir.rstrip("/"), "dropped")


def run(job: RefineJob, beam_args: Sequence[str] = ()) -> Optional[dict]:
    """Runs the job to completion; returns the report (None when the runner did not wait)."""
    started_at = time.time()
    options = PipelineOptions(list(beam_args))
    pipeline = beam.Pipeline(options=options)
    build(pipeline, job, started_at)
    result = pipeline.run()
    state = result.wait_until_finish()
    logging.info("pipeline finished: %s in %.1fs", state, time.time() - started_at)
    if state != PipelineState.DONE:
        return None
    report = report_lib.read_report(job.output_dir)
    counters = _counters(result)
    if counters is not None:
        points = timeline.from_counters(
            {k: v for k, v in counters.items() if k.startswith(timeline.PREFIX)},
            report.get("throughput", {}).get("elapsed_s"))
        report_lib.write_report(report_lib.add_runner_metrics(
            report, counters.get("gdr/generate/tokens_out"), points,
            prompt_tokens=counters.get("gdr/generate/tokens_in")), job.output_dir, log=False)
    return report


def _counters(result) -> Optional[dict]:
    """The job's gdr counters, name -> committed value (attempted where the runner has no
    committed ones, summed over steps); None when the runner gives no metrics."""
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(timeline.NAMESPACE))
    except Exception as e:  # pylint: disable=broad-except  # metrics are optional extras
        logging.warning("no metrics from the runner: %s", e)
        return None
    values: dict = {}
    for c in query["counters"]:
        try:
            value = c.committed
        except Exception:  # pylint: disable=broad-except  # runner without committed metrics
            value = c.attempted
        if value is not None:
            values[c.key.metric.name] = values.get(c.key.metric.name, 0) + value
    return values


def summary(report: dict, job: RefineJob) -> str:
    """The end-of-run text: what came out, what did not and why, where it is, how to load it."""
    counts = report["counts"]
    verdicts = ", ".join(f"{v} {n}" for v, n in report["outputs_by_verdict"].items()) or "none"
    lines = [f"GDR {task_name(job)}: {counts['inputs']} inputs -> {counts['outputs']} outputs "
             f"({verdicts}), {counts['dead_letters']} dead letters, "
             f"{counts['filtered']} filtered, {counts['deduplicated']} deduplicated: "
             f"{'balanced' if report['balanced'] else 'NOT BALANCED'} ({report['balance']})"]
    config = report.get("config", {})
    lines.append(f"  model: {config.get('model') or 'embedded SmolLM2-135M-Instruct'}, "
                 f"adapter: {config.get('adapter') or 'none'}")
    segmented = report.get("segmented") or {}
    if segmented.get("outputs"):
        lines.append(f"  {segmented['outputs']} long texts refined in {segmented['segments']} "
                     "segments (" + ", ".join(f"{v} {n}" for v, n in
                                               segmented["segments_by_verdict"].items()) + ")")
    for stage, reasons in report["dead_letters_by_stage"].items():
        lines.append(f"  dead letters at {stage}: "
                     + ", ".join(f"{r} {n}" for r, n in reasons.items()))
    for kind in ("filtered", "deduplicated"):
        reasons = report.get(f"{kind}_by_reason") or {}
        if reasons:
            lines.append(f"  {kind}: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
    rate = report["throughput"]
    if rate.get("elapsed_s"):
        tokens = (f", {rate['tokens_per_s']:.1f} generated tokens/s"
                  if "tokens_per_s" in rate else "")
        lines.append(f"  {rate['elapsed_s']:.1f}s end to end, "
                     f"{rate.get('examples_per_s', 0):.2f} examples/s{tokens}")
    lines.append("  outputs: " + ", ".join(report["files"]))
    lines.append(f"  dead letters: {dead_letter_dir(job.output_dir)}/dead_letter-*.jsonl")
    lines.append(f"  filtered and deduplicated: {dropped_dir(job.output_dir)}/dropped-*.jsonl")
    out = job.output_dir.rstrip("/")
    lines.append(f"  report: {FileSystems.join(out, report_lib.REPORT_JSON)}, "
                 f"{FileSystems.join(out, report_lib.REPORT_HTML)}")
    lines.append("  load it:\n"
                 "    import tensorflow_datasets as tfds\n"
                 f"    ds = tfds.builder_from_directory({out!r}).as_dataset("
                 f"split={job.split!r})")
    return "\n".join(lines)


def parse_flags(argv: Sequence[str]) -> list:
    """absl parses the flags it knows; the rest (argv[0] first) are Beam's pipeline options."""
    FLAGS.unparse_flags()  # a second in-process parse (tests) must not inherit values
    return FLAGS(list(argv), known_only=True)


def main(argv: Sequence[str]) -> int:
    job = RefineJob.from_flags()
    if FLAGS.estimate:
        from pipelines import estimate  # pylint: disable=import-outside-toplevel
        est = estimate.estimate(job, FLAGS.estimate, sys.modules[__name__],
                                tokens_per_s=FLAGS.estimate_tokens_per_s,
                                prices=estimate.load_prices())
        print(estimate.render(est))
        print(f"  written: {estimate.write_estimate(est, job.output_dir)}")
        return 0
    report = run(job, argv[1:])
    if report is None:
        print("The pipeline did not finish here (a non-blocking runner?); the report will be at "
              f"{FileSystems.join(job.output_dir, report_lib.REPORT_JSON)}")
        return 0
    print(summary(report, job))
    return 0 if report["balanced"] else 1


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main, flags_parser=parse_flags)
