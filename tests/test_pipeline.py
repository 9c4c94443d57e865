"""The refinement job end to end on the DirectRunner, with the real embedded model.

Every valid example costs model time on CPU, so the runs use few valid examples and a small
max_new_tokens; malformed inputs are cheap (they die at read) and are used by the thousand.
Expected counts are derived here from what the test wrote, never from the pipeline's own
counters, and outputs are read back from disk (TFDS, dead-letter files).
"""

import glob
import importlib.util
import json
import os
import random
import re
import subprocess
import sys

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from gdr_beam import report as report_lib
from gdr_beam.beam import records as rec
from gdr_beam.beam import tfrecord
from pipelines import refine

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "gdr_beam", "samples", "pii_sample.jsonl")
MAX_NEW_TOKENS = 32
# Sampling (not greedy), so the determinism check covers the per-example PRNG keys too.
SAMPLING = ["--temperature=0.7", "--seed=7"]


# --- helpers ----------------------------------------------------------------------------------

def run_job(input_path, output_dir, *extra):
    """pipelines.refine in this process, exactly as the CLI parses it; returns the report."""
    argv = refine.parse_flags(["refine", f"--input={input_path}", f"--output_dir={output_dir}",
                               f"--max_new_tokens={MAX_NEW_TOKENS}", *extra])
    report = refine.run(refine.RefineJob.from_flags(), argv[1:])
    assert report is not None
    return report


def load_outputs(output_dir, split="train"):
    builder = tfds.builder_from_directory(str(output_dir))
    return builder, list(tfds.as_numpy(builder.as_dataset(split=split)))


def load_dead(output_dir):
    dead = []
    for path in sorted(glob.glob(os.path.join(output_dir, "dead_letters", "dead_letter-*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            dead += [rec.DeadLetter.from_json_line(line) for line in f]
    return dead


def shard_bytes(output_dir):
    paths = sorted(glob.glob(os.path.join(output_dir, "refined-train.tfrecord-*")))
    assert paths
    out = {}
    for path in paths:
        with open(path, "rb") as f:
            out[os.path.basename(path)] = f.read()
    return out


def check_output_contract(example, task="pii"):
    for name in rec.OUTPUT_FIELDS:
        assert name in example, name
    assert example["task"].decode() == task
    assert example["verdict"].decode() in rec.VERDICTS
    assert isinstance(json.loads(example["changes"].decode() or "[]"), list)
    reasons = json.loads(example["fallback_reasons"].decode())
    assert reasons if example["verdict"] == b"fallback" else reasons == []
    assert example["text"].decode().strip()


# --- report.py (no model) ---------------------------------------------------------------------

def test_changed_spans_and_html_escaping():
    before = "Call Maria at 555-0134 <now>."
    after = "Call Jane Doe at 555-0000 <now>."
    spans = report_lib.changed_spans(before, after)
    assert [(s["before"], s["after"]) for s in spans] == [("Maria", "Jane Doe"),
                                                         ("0134", "0000")]
    for s in spans:  # offsets point into `before`
        assert before[s["start"]:s["end"]] == s["before"]
    assert report_lib.changed_spans("same", "same") == []
    # The page's escaping: tests/test_report.py.


# --- the bundled sample, through the CLI --------------------------------------------------------

@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The CLI in a subprocess, with Beam options mixed into the flags."""
    out = str(tmp_path_factory.mktemp("sample") / "out")
    cmd = [sys.executable, "-m", "pipelines.refine", f"--input={SAMPLE}", f"--output_dir={out}",
           "--task=pii", f"--max_new_tokens={MAX_NEW_TOKENS}", "--num_shards=2", *SAMPLING,
           # Not ours: these must reach Beam's PipelineOptions.
           "--runner=DirectRunner", "--direct_num_workers=1"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return out, proc.stdout, proc.stderr


def test_cli_sample_loads_with_tfds(sample_run):
    out, stdout, _ = sample_run
    with open(SAMPLE, encoding="utf-8") as f:
        inputs = {r["id"]: r for r in map(json.loads, f)}
    builder, examples = load_outputs(out)
    assert builder.info.splits["train"].num_examples == len(inputs)
    features = builder.info.features
    for name in rec.OUTPUT_FIELDS + ("source",):
        assert isinstance(features[name], tfds.features.Text), name
    assert {e["id"].decode() for e in examples} == set(inputs)
    for example in examples:
        check_output_contract(example)
        original = inputs[example["id"].decode()]
        assert example["original_sha256"].decode() == rec.text_sha256(original["text"])
        assert example["source"].decode() == "sample"  # pass-through
    assert load_dead(out) == []
    # The summary names what a user needs next.
    assert "balanced" in stdout and "tfds.builder_from_directory" in stdout
    assert "refined-train.tfrecord-00000-of-00002" in stdout
    # --adapter=auto (the default) on the embedded model and pii: the shipped adapter.
    assert "adapter: shipped:pii" in stdout


def test_cli_is_quiet_by_default(sample_run):
    """Only our own log lines: the libraries' INFO/WARNING chatter is filtered (pipelines/quiet.py)."""
    _, _, stderr = sample_run
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert any("progress:" in line for line in lines)  # our progress line is kept
    for noise in ("apitools", "cpu_feature_guard", "Loaded recognizer", "xla_bridge",
                  "native_type_compatibility", "Recognizer not added", "statecache"):
        assert not any(noise in line for line in lines), noise
    own = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ (\w+\.py):\d+\]")
    for line in lines:
        match = own.match(line)
        assert match, line  # every line is an absl-format log line of ours
        assert match.group(1) in OUR_FILES, line


OUR_FILES = {os.path.basename(p) for pattern in ("gdr_beam/**/*.py", "pipelines/*.py")
             for p in glob.glob(os.path.join(REPO, pattern), recursive=True)}


def test_cli_sample_report(sample_run):
    out, _, _ = sample_run
    report = report_lib.read_report(out)
    assert report["balanced"] and report["writes_balanced"]
    assert report["counts"] == {"inputs": 8, "read": 8, "refined": 8, "outputs": 8,
                                "filtered": 0, "deduplicated": 0, "dead_letters": 0}
    assert sum(report["outputs_by_verdict"].values()) == 8
    assert report["throughput"]["elapsed_s"] > 0
    assert report["throughput"]["examples_per_s"] > 0
    assert report["samples"]
    for sample in report["samples"]:
        assert sample["before"] is not None  # the original was joined in
        rebuilt = sample["before"]
        for span in reversed(sample["changed_spans"]):
            rebuilt = rebuilt[:span["start"]] + span["after"] + rebuilt[span["end"]:]
        assert rebuilt == sample["after"]
    # What only the runner's metrics know: tokens (retries included) and the timeline.
    throughput = report["throughput"]
    assert throughput["generated_tokens"] > 0 and throughput["prompt_tokens"] > 0
    points = report["timeline"]["points"]
    assert sum(p["examples"] for p in points) >= 8  # every generation, retries included
    assert sum(p["tokens"] for p in points) == throughput["generated_tokens"]
    for sample in report["samples"]:
        assert bool(sample["fallback_reasons"]) == (sample["verdict"] == "fallback")
    with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
        page = f.read()
    assert "<script src" not in page.lower() and "Balanced" in page


def test_same_seed_gives_identical_shards(sample_run, tmp_path):
    out, _, _ = sample_run
    again = str(tmp_path / "again")
    run_job(SAMPLE, again, "--num_shards=2", *SAMPLING)
    assert shard_bytes(again) == shard_bytes(out)


def test_example_tfds_builder(sample_run, tmp_path):
    out, _, _ = sample_run
    spec = importlib.util.spec_from_file_location(
        "refined_text", os.path.join(REPO, "examples", "refined_tfds", "refined_text.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # TFDS looks its builder's module up by name
    spec.loader.exec_module(module)
    _, direct = load_outputs(out)
    by_id = {e["id"]: e for e in direct}
    for config in ("all", "accepted"):
        builder = module.RefinedText(config=config, data_dir=str(tmp_path / "tfds"))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=out))
        examples = list(tfds.as_numpy(builder.as_dataset(split="train")))
        assert builder.info.features["num_changes"].dtype == tf.int32
        accepted = {i for i, e in by_id.items() if e["verdict"] in (b"rewritten", b"unchanged")}
        assert {e["id"] for e in examples} == (set(by_id) if config == "all" else accepted)
        for example in examples:
            assert example["text"] == by_id[example["id"]]["text"]
            assert json.loads(example["metadata"]) == {"source": "sample"}


# --- malformed input --------------------------------------------------------------------------

def _fuzz_lines(rng, n):
    """n lines that must all die at read, each with the id a dead letter must name (or "")."""
    junk_values = [None, 0, 1.5, True, [], {}, [1, [2, {"a": None}]], {"text": "nested"},
                   "", "   ", "\t\n ", "\ud800 lone surrogate"]
    lines = []
    for i in range(n):
        kind = i % 12
        rid = f"fuzz-{i}"
        if kind == 0:  # not JSON
            raw, named = b"{" + bytes(rng.choice(b"ab\"{}[]:,\\ 01") for _ in range(rng.randrange(1, 40))), ""
        elif kind == 1:  # invalid UTF-8 bytes (no newlines: those would split the line)
            junk = bytes(b for b in rng.randbytes(rng.randrange(1, 30)) if b not in b"\r\n")
            raw, named = b'{"id": "' + rid.encode() + b'", "text": "\xff\xfe' + junk + b'"}', ""
        elif kind == 2:  # missing text
            raw, named = json.dumps({"id": rid, "body": "no text field"}).encode(), rid
        elif kind == 3:  # empty or whitespace text
            raw, named = json.dumps({"id": rid, "text": rng.choice(["", " ", "\t \n", "\u3000"])}
                                    ).encode(), rid
        elif kind == 4:  # text of the wrong type, nested junk included
            raw, named = json.dumps({"id": rid, "text": rng.choice(junk_values[1:8])}).encode(), rid
        elif kind == 5:  # ids of the wrong type or blank, on a good text: bad_id
            bad = rng.choice([1.5, True, [1], {"a": 1}, "", "  "])
            raw = json.dumps({"id": bad, "text": "fine text"}).encode()
            named = bad if isinstance(bad, str) else ""
        elif kind == 6:  # huge ids, string and integer, on bad text
            huge = rng.choice(["x" * rng.randrange(1000, 20000), 10 ** rng.randrange(19, 60)])
            raw, named = json.dumps({"id": huge, "text": None}).encode(), str(huge)
        elif kind == 7:  # JSON that is not an object
            raw, named = json.dumps(rng.choice([[1, 2], "text", 3, None, [{"id": rid}]])).encode(), ""
        elif kind == 8:  # lone surrogate in the text (valid JSON, not encodable as UTF-8)
            raw, named = ('{"id": "%s", "text": "bad \\ud800 text"}' % rid).encode(), rid
        elif kind == 9:  # truncated JSON
            raw, named = json.dumps({"id": rid, "text": "cut"}).encode()[:-rng.randrange(1, 8)], ""
        elif kind == 10:  # integer id, nested junk everywhere, text an object
            raw = json.dumps({"id": i, "text": {"text": "nested"}, "meta": {"a": [[[]]]}}).encode()
            named = str(i)
        else:  # random bytes that are not blank
            raw = b"~" + bytes(b for b in rng.randbytes(rng.randrange(0, 50)) if b not in b"\r\n")
            named = ""
        lines.append((raw, named))
    return lines


VALID = [  # the only examples the model sees; typed pass-through fields on purpose
    {"id": "ok-1", "text": "Call Ann at 555-0101.", "n": 1, "score": 0.5, "tags": ["a"],
     "nested": {"deep": [1, {"x": None}]}},
    {"id": "y" * 3000, "text": "Mail bob@example.com today.", "n": 2, "score": 1.0,
     "tags": ["b", "c"]},
    {"text": "My name is Li Wei.", "n": 3, "score": 2.5, "tags": []},  # id derived
    {"id": 123456789012345678901234567890, "text": "Hello from Oslo.", "n": 4},
]


def test_fuzz_malformed_records(tmp_path):
    rng = random.Random(1234)
    lines = _fuzz_lines(rng, 1100)
    for record in VALID:
        lines.insert(rng.randrange(len(lines)), (json.dumps(record).encode(), None))
    # Duplicates of a valid id: the later copies (by line) die as duplicate_id.
    lines.append((json.dumps({"id": "ok-1", "text": "a different text"}).encode(), "ok-1"))
    lines.append((json.dumps(VALID[0]).encode(), "ok-1"))
    lines.insert(len(lines) // 2, (b"", None))  # a blank line is no example
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(raw for raw, _ in lines) + b"\n")
    examples = [(lineno, raw, named) for lineno, (raw, named) in enumerate(lines, start=1)
                if raw.strip()]

    out = str(tmp_path / "out")
    # No retries: what this checks is decided at read; a retry stage would only cost its
    # set-up (the retry path: the sample run above and tests/test_refine.py).
    report = run_job(str(path), out, "--num_shards=3", "--max_retries=0")

    builder, outputs = load_outputs(out)
    dead = load_dead(out)
    assert len(examples) >= 1000
    assert len(outputs) + len(dead) == len(examples)  # exactly one fate per example
    assert report["balanced"] and report["writes_balanced"]
    assert report["counts"]["inputs"] == len(examples)
    assert report["counts"]["outputs"] == len(outputs) == len(VALID)
    assert report["counts"]["dead_letters"] == len(dead)
    # Outputs: the valid records, typed pass-through fields.
    expected_ids = {"ok-1", "y" * 3000, rec.derive_id(VALID[2]["text"]), str(VALID[3]["id"])}
    assert {e["id"].decode() for e in outputs} == expected_ids
    features = builder.info.features
    assert features["n"].dtype == tf.int64 and features["score"].dtype == tf.float32
    assert features["tags"].shape == (None,)
    for example in outputs:
        check_output_contract(example)
    # Dead letters: stage, reason, source (the line) and the id wherever the input had one.
    by_line = {lineno: named for lineno, _, named in examples}
    seen_lines = set()
    for d in dead:
        assert d.stage in rec.STAGES and d.reason
        assert d.stage == "read", d  # every malformed record dies where it is read
        file_path, lineno = d.source.rsplit(":", 1)
        assert file_path.endswith("fuzz.jsonl")
        lineno = int(lineno)
        assert lineno not in seen_lines
        seen_lines.add(lineno)
        assert d.id == by_line[lineno], (d.reason, d.source, d.id[:40])
        assert d.payload == lines[lineno - 1][0] or d.reason == "duplicate_id"
    reasons = {d.reason for d in dead}
    assert {"invalid_json", "invalid_utf8", "missing_text", "empty_text", "text_not_string",
            "bad_id", "not_an_object", "duplicate_id"} <= reasons
    assert sum(1 for d in dead if d.reason == "duplicate_id") == 2


def _example(record):
    return rec.to_example(record).SerializeToString(deterministic=True)


def test_corrupt_tfrecord_input(tmp_path):
    path = tmp_path / "input.tfrecord"
    good = [{"id": "t-1", "text": "Call Ann at 555-0101."},
            {"id": "t-2", "text": "Mail bob@example.com today."}]
    with open(path, "wb") as f:
        tfrecord.write_frame(f, _example(good[0]))
        tfrecord.write_frame(f, b"\x0a\x03not a valid Example proto")           # invalid_example
        tfrecord.write_frame(f, _example({"id": "t-nt", "body": "no text"}))    # missing_text
        start = f.tell()
        tfrecord.write_frame(f, _example({"id": "t-crc", "text": "flipped"}))
        tfrecord.write_frame(f, _example(good[1]))
        f.write(b"\x05\x00\x00\x00\x00\x00")                                   # truncated header
    data = bytearray(path.read_bytes())
    data[start + 12 + 3] ^= 0xFF  # a byte of t-crc's data: its data checksum fails
    path.write_bytes(bytes(data))

    out = str(tmp_path / "out")
    report = run_job(str(path), out, "--max_retries=0")  # decided at read, as above
    _, outputs = load_outputs(out)
    dead = load_dead(out)
    assert sorted(e["id"].decode() for e in outputs) == ["t-1", "t-2"]
    assert sorted((d.stage, d.reason) for d in dead) == [
        ("read", "corrupt_record"), ("read", "corrupt_tfrecord"), ("read", "invalid_example"),
        ("read", "missing_text")]
    assert {d.reason: d.id for d in dead}["missing_text"] == "t-nt"
    assert all(d.source.startswith(str(path) + "#") for d in dead)
    assert report["balanced"] and report["counts"]["inputs"] == 6
    assert report["dead_letters_by_stage"] == {"read": {
        "corrupt_record": 1, "corrupt_tfrecord": 1, "invalid_example": 1, "missing_text": 1}}


def test_report_detects_a_lost_record(tmp_path):
    """The balance check can fail: a record that vanishes between read and write is caught."""
    import apache_beam as beam
    from gdr_beam.beam import io as gio

    records = [{"id": f"r{i}", "text": f"text {i}"} for i in range(3)]
    refined = [dict(r, verdict="unchanged", task="pii", model="none", changes="[]",
                    original_sha256=rec.text_sha256(r["text"])) for r in records[:2]]
    dead = [rec.DeadLetter(id="", stage="read", reason="invalid_json", payload=b"{")]
    out = str(tmp_path / "out")
    with beam.Pipeline(runner="DirectRunner") as p:
        written = p | "Refined" >> beam.Create(refined) | gio.WriteRefined(out)
        _ = ({"records": p | "Records" >> beam.Create(records),
              "read_dead_letter": p | "ReadDead" >> beam.Create(dead),
              "dead_letter": p | "NoDead" >> beam.Create([]),
              "refined": p | "Refined2" >> beam.Create(refined), "files": written.files}
             | report_lib.RunReport(out))
    report = report_lib.read_report(out)
    assert report["counts"]["inputs"] == 4 and report["counts"]["outputs"] == 2
    assert not report["balanced"]
    assert report["dead_letters_by_stage"] == {"read": {"invalid_json": 1}}


def test_filters_and_dedup_drop_on_purpose_and_say_why(tmp_path):
    """Two records with one text (greedy, no retries: the same rewrite), one looping text and
    one of control characters: the job keeps one of the pair, drops the loop and the control
    characters before generation (input checks), and files every drop with its reason."""
    same = "The quarterly budget review moves to Thursday afternoon in room four."
    loop = " ".join(["the build is green again"] * 12)
    path = tmp_path / "in.jsonl"
    rows = [{"id": "dup-a", "text": same}, {"id": "dup-b", "text": same},
            {"id": "loop", "text": loop}, {"id": "plain", "text": "Lunch is at noon today."},
            {"id": "ctrl", "text": "\x01\x02\x03\x04 ok \x05\x06"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = str(tmp_path / "out")
    report = run_job(str(path), out, "--max_retries=0")
    assert report["balanced"], report["balance"]
    assert report["counts"]["inputs"] == 5
    assert report["deduplicated_by_reason"] == {"exact_duplicate": 1}
    assert report["filtered_by_reason"] == {"repetition": 1, "bad_characters": 1}
    _, examples = load_outputs(out)
    assert sorted(e["id"].decode() for e in examples) == ["dup-a", "plain"]
    dropped = []
    for p in glob.glob(os.path.join(out, "dropped", "dropped-*.jsonl")):
        with open(p, encoding="utf-8") as f:
            dropped += [rec.DeadLetter.from_json_line(line) for line in f]
    by_id = {d.id: d for d in dropped}
    assert set(by_id) == {"dup-b", "loop", "ctrl"}
    assert by_id["dup-b"].stage == "dedup" and "dup-a" in by_id["dup-b"].detail
    assert by_id["loop"].stage == "filter" and by_id["loop"].reason == "repetition"
    assert by_id["loop"].detail.startswith("input text:")  # dropped before generation
    assert by_id["ctrl"].reason == "bad_characters" and by_id["ctrl"].detail.startswith("input")
    assert json.loads(by_id["loop"].payload)["id"] == "loop"  # rerunnable payload
