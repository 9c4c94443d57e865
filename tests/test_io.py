"""ReadRecords / WriteRefined / WriteDeadLetters on the DirectRunner, and the record contract.

Each pipeline writes what it produced to files (records as JSON lines, dead letters with
WriteDeadLetters), so the assertions see exactly what a real run leaves on disk.
"""

import glob
import gzip
import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from apache_beam.metrics.metric import MetricsFilter

from gdr_beam.beam import io as gio
from gdr_beam.beam import records as rec
from gdr_beam.beam import tfrecord


# --- helpers ----------------------------------------------------------------------------------

def _counters(result) -> dict:
    query = result.metrics().query(MetricsFilter().with_namespace("gdr"))
    return {c.key.metric.name: c.committed for c in query["counters"]}


def run_read(tmp_path, path, **kwargs):
    """ReadRecords -> (records sorted by id, dead letters as written, counters)."""
    out = tmp_path / "read_out"
    p = beam.Pipeline(runner="DirectRunner")
    read = p | gio.ReadRecords(str(path), **kwargs)
    _ = (read.records
         | beam.Map(lambda r: rec.record_payload(r).decode())
         | beam.io.WriteToText(str(out / "records"), shard_name_template=""))
    _ = read.dead_letter | gio.WriteDeadLetters(str(out / "dead"))
    result = p.run()
    result.wait_until_finish()
    with open(out / "records") as f:
        records = sorted((json.loads(line) for line in f), key=lambda r: r["id"])
    dead = []
    for shard in sorted(glob.glob(str(out / "dead" / "dead_letter-*-of-*.jsonl"))):
        with open(shard) as f:
            dead += [rec.DeadLetter.from_json_line(line) for line in f]
    return records, dead, _counters(result)


def run_write(records, output_dir, **kwargs):
    """WriteRefined -> (written file paths, write dead letters)."""
    out = str(output_dir) + "_dead"
    p = beam.Pipeline(runner="DirectRunner")
    written = p | beam.Create(records) | gio.WriteRefined(str(output_dir), **kwargs)
    _ = (written.files | "Paths" >> beam.combiners.ToList()
         | beam.Map(lambda paths: json.dumps(sorted(paths)))
         | beam.io.WriteToText(out + "/files", shard_name_template=""))
    _ = written.dead_letter | gio.WriteDeadLetters(out)
    p.run().wait_until_finish()
    with open(out + "/files") as f:
        files = json.loads(f.read())
    with open(out + "/dead_letter-00000-of-00001.jsonl") as f:
        dead = [rec.DeadLetter.from_json_line(line) for line in f]
    return files, dead


def by_key(dead):
    return {(d.reason, d.source): d for d in dead}


def refined(i, **extra):
    verdict = rec.VERDICTS[i % 4]
    return {"id": f"doc-{i:02d}", "text": f"refined text {i}", "original_sha256": f"{i:064x}",
            "task": "pii", "model": "tiny", "verdict": verdict,
            "changes": json.dumps([{"start": i, "end": i + 1}]),
            "fallback_reasons": json.dumps(["truncated", "leaked_value"]
                                           if verdict == "fallback" else []),
            "segments": json.dumps([{"start": 0, "end": 5, "verdict": verdict}] if i % 5 == 1
                                   else []), **extra}


# --- records.py -------------------------------------------------------------------------------

def test_normalize_record_rules():
    norm = rec.normalize_record
    assert norm('{"id": "a", "text": "hi"}') == {"id": "a", "text": "hi"}
    assert norm({"id": 12, "text": "hi"})["id"] == "12"
    assert norm({"text": "hi"})["id"] == "sha256:" + rec.text_sha256("hi")[:16]
    assert norm({"id": None, "text": "hi"})["id"].startswith("sha256:")
    assert norm({"doc": "x", "body": "hi"}, text_field="body", id_field="doc") == {
        "id": "x", "text": "hi"}
    record = norm({"id": "a", "text": "t", "s": "x", "i": 3, "f": 0.5, "b": True, "n": None,
                   "ls": ["a", "b"], "mixed_num": [1, 2.5, True], "empty": [],
                   "obj": {"z": 1, "a": [1, "x"]}, "mixed": [1, "x"], "big": 2 ** 70,
                   "nested": [[1], [2]]})
    assert record == {"id": "a", "text": "t", "s": "x", "i": 3, "f": 0.5, "b": True,
                      "ls": ["a", "b"], "mixed_num": [1.0, 2.5, 1.0], "empty": [],
                      "obj": '{"a": [1, "x"], "z": 1}', "mixed": '[1, "x"]',
                      "big": "1180591620717411303424", "nested": "[[1], [2]]"}

    cases = {
        '{"id": "a", "text": ""}': "empty_text",
        '{"id": "a", "text": " \\n\\t "}': "empty_text",
        '{"id": "a", "body": "x"}': "missing_text",
        '{"id": "a", "text": null}': "missing_text",
        '{"id": "a", "text": 5}': "text_not_string",
        '{"id": "a", "text": "\\ud800"}': "invalid_utf8",
        '{"id": "", "text": "x"}': "bad_id",
        '{"id": [1], "text": "x"}': "bad_id",
        "[1, 2]": "not_an_object",
        '"just a string"': "not_an_object",
        "{not json": "invalid_json",
        b'{"text": "caf\xe9"}': "invalid_utf8",
    }
    for raw, reason in cases.items():
        with pytest.raises(rec.RecordError) as err:
            norm(raw, source="f.jsonl:3")
        assert (err.value.stage, err.value.reason) == ("read", reason), raw
        assert "f.jsonl:3" in str(err.value)
    with pytest.raises(rec.RecordError, match="field_collision"):
        norm({"body": "x", "text": "y"}, text_field="body")


def test_json_list_reads_old_and_new_outputs():
    assert rec.json_list(b'["truncated", "leaked_value"]') == ["truncated", "leaked_value"]
    assert rec.json_list('[{"start": 1}]') == [{"start": 1}]
    # Outputs written before fallback_reasons existed: absent or "" reads as no reasons.
    for old in (None, "", b"", "not json", '{"a": 1}'):
        assert rec.json_list(old) == []


def test_example_codec_and_dead_letter_json():
    record = {"id": "a", "text": "héllo", "n": 3, "f": 0.25, "b": True, "raw": b"\xff\x00",
              "tags": ["x", "y"], "one": ["z"], "empty": []}
    ex = rec.to_example(record)
    assert ex.features.feature["n"].int64_list.value == [3]
    assert ex.features.feature["b"].int64_list.value == [1]
    assert ex.features.feature["f"].float_list.value == [0.25]
    assert ex.features.feature["text"].bytes_list.value == ["héllo".encode()]
    back = rec.from_example(tf.train.Example.FromString(ex.SerializeToString()))
    # Without a schema a 1-element list reads as a scalar and a bool as an int.
    assert back == {**record, "b": 1, "one": "z"}
    schema = {"b": rec.FieldSpec("bool"), "one": rec.FieldSpec("str", True)}
    assert rec.from_example(ex, schema=schema) == record
    assert rec.normalize_record(ex) == {**record, "b": 1, "one": "z"}
    with pytest.raises(rec.RecordError, match="invalid_utf8"):
        rec.normalize_record(rec.to_example({"text": b"\xff"}))

    dead = rec.DeadLetter(id="a", stage="read", reason="x", payload=b"\x00\xff", source="s:1")
    assert rec.DeadLetter.from_json_line(dead.to_json_line()) == dead
    with pytest.raises(ValueError):
        rec.DeadLetter(id="a", stage="nope", reason="x", payload=b"")


def test_framing_matches_tensorflow(tmp_path):
    path = str(tmp_path / "x.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for data in (b"", b"a", b"bc" * 500):
            w.write(data)
    with open(path, "rb") as f:
        frames = list(tfrecord.read_frames(f))
    assert [fr.data for fr in frames] == [b"", b"a", b"bc" * 500]
    assert not any(fr.error for fr in frames)
    with open(tmp_path / "y.tfrecord", "wb") as f:
        for data in (b"", b"a", b"bc" * 500):
            tfrecord.write_frame(f, data)
    with open(path, "rb") as a, open(tmp_path / "y.tfrecord", "rb") as b:
        assert a.read() == b.read()


# --- ReadRecords ------------------------------------------------------------------------------

def test_read_jsonl_outputs_and_dead_letters(tmp_path):
    lines = [
        b'{"id": "a", "text": "Hello there", "lang": "en", "score": 0.5, "tags": ["x", "y"]}',
        b'{"id": "b", "text": ""}',
        b'{"id": "c", "text": "  \\t\\n "}',
        b'{"id": "d", "body": "no text field"}',
        b"this is not json",
        b'{"id": "f", "text": "caf\xe9"}',
        b"[1, 2, 3]",
        b'{"id": "a", "text": "same id again"}',
        b'{"text": "I have no id", "meta": {"k": [1, 2]}}',
        b"   ",
        b'{"id": 7, "text": "integer id"}\r',
        b'{"id": "g", "text": 5}',
    ]
    first = tmp_path / "in" / "a.jsonl"
    first.parent.mkdir()
    first.write_bytes(b"\n".join(lines) + b"\n")
    second = tmp_path / "in" / "b.jsonl.gz"
    second.write_bytes(gzip.compress(b'{"id": "a", "text": "third a"}\n{"id": "h", "text": "h"}'))

    records, dead, counters = run_read(tmp_path, tmp_path / "in" / "*.jsonl*", format="jsonl")

    derived = "sha256:" + rec.text_sha256("I have no id")[:16]
    assert records == sorted([
        {"id": "a", "text": "Hello there", "lang": "en", "score": 0.5, "tags": ["x", "y"]},
        {"id": derived, "text": "I have no id", "meta": '{"k": [1, 2]}'},
        {"id": "7", "text": "integer id"},
        {"id": "h", "text": "h"},
    ], key=lambda r: r["id"])

    a, b = str(first), str(second)
    expected = {  # (reason, source) -> (id, payload or None when not checked)
        ("empty_text", f"{a}:2"): ("b", lines[1]),
        ("empty_text", f"{a}:3"): ("c", lines[2]),
        ("missing_text", f"{a}:4"): ("d", lines[3]),
        ("invalid_json", f"{a}:5"): ("", lines[4]),
        ("invalid_utf8", f"{a}:6"): ("", lines[5]),
        ("not_an_object", f"{a}:7"): ("", lines[6]),
        ("duplicate_id", f"{a}:8"): ("a", None),
        ("text_not_string", f"{a}:12"): ("g", lines[11]),
        ("duplicate_id", f"{b}:1"): ("a", None),
    }
    got = by_key(dead)
    assert sorted(got) == sorted(expected)
    for key, (rid, payload) in expected.items():
        letter = got[key]
        assert (letter.id, letter.stage) == (rid, "read"), key
        if payload is not None:
            assert letter.payload == payload, key
    assert json.loads(got[("duplicate_id", f"{a}:8")].payload)["text"] == "same id again"
    assert f"{a}:1" in got[("duplicate_id", f"{b}:1")].detail

    non_blank = len(lines) - 1 + 2
    assert len(records) + len(dead) == non_blank
    assert counters["gdr/read/records"] == len(records)
    assert counters["gdr/read/empty_text"] == 2
    assert counters["gdr/read/duplicate_id"] == 2
    assert counters["gdr/read/blank_lines"] == 1


def _frames_offsets(payloads):
    offsets, pos = [], 0
    for data in payloads:
        offsets.append(pos)
        pos += 16 + len(data)
    return offsets


def test_read_corrupt_tfrecord(tmp_path):
    examples = [rec.to_example({"id": f"r{i}", "text": f"text {i}", "n": i}).SerializeToString()
                for i in range(5)]
    offsets = _frames_offsets(examples)
    (tmp_path / "in").mkdir()

    def write(name, payloads=examples):
        path = str(tmp_path / "in" / name)
        with tf.io.TFRecordWriter(path) as w:
            for data in payloads:
                w.write(data)
        return path

    def flip(path, offset):
        with open(path, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0xFF]))

    bad_length = write("bad_length.tfrecord")
    flip(bad_length, offsets[2] + 9)  # the CRC of record 2's length: nothing after is found
    bad_data = write("bad_data.tfrecord")
    flip(bad_data, offsets[1] + 12 + 3)  # a byte of record 1's data: its CRC fails, rest fine
    truncated = write("truncated.tfrecord")
    with open(truncated, "r+b") as f:
        f.truncate(offsets[4] + 14)
    bad_text = rec.to_example({"id": "bad", "text": b"\xff"}).SerializeToString()
    not_example = write("not_example.tfrecord", [b"\xff\xff\xff", b"", bad_text])

    records, dead, counters = run_read(tmp_path, tmp_path / "in" / "*.tfrecord")

    # Every file has ids r0..r4, so only the first file in path order keeps them.
    got = by_key(dead)
    assert got[("corrupt_tfrecord", f"{bad_length}#2")].detail.startswith(
        f"length checksum mismatch at byte {offsets[2]}")
    assert "all later records of this file were not read" in \
        got[("corrupt_tfrecord", f"{bad_length}#2")].detail
    assert got[("corrupt_record", f"{bad_data}#1")].payload != examples[1]
    assert got[("corrupt_tfrecord", f"{truncated}#4")].detail.startswith("truncated record")
    assert got[("invalid_example", f"{not_example}#0")].payload == b"\xff\xff\xff"
    assert got[("missing_text", f"{not_example}#1")].payload == b""
    assert got[("invalid_utf8", f"{not_example}#2")].id == "bad"
    # bad_data.tfrecord sorts first: it supplies r0, r2, r3, r4; bad_length.tfrecord r1.
    assert [r["id"] for r in records] == ["r0", "r1", "r2", "r3", "r4"]
    assert records[1] == {"id": "r1", "text": "text 1", "n": 1}
    dups = sorted(d.source for d in dead if d.reason == "duplicate_id")
    assert dups == sorted([f"{bad_length}#0"] + [f"{truncated}#{i}" for i in range(4)])
    assert len(records) + len(dead) == 5 + 3 + 5 + 3  # what each file yielded or lost
    assert counters["gdr/read/corrupt_tfrecord"] == 2


# --- WriteRefined and TFDS ---------------------------------------------------------------------

def test_write_refined_round_trip_and_determinism(tmp_path):
    records = [refined(i, n=i, score=i / 4, flag=i % 2 == 0, tags=["t"] * (i % 3),
                       **({"lang": "en"} if i % 2 else {})) for i in range(12)]
    records.append({"id": "", "text": "no id"})
    records.append(refined(99, verdict=3))
    files, dead = run_write(records, tmp_path / "a", num_shards=4)
    assert sorted((d.stage, d.reason, d.id) for d in dead) == [
        ("write", "bad_field", "doc-99"), ("write", "invalid_record", "")]
    assert [os.path.basename(f) for f in files] == [
        f"refined-train.tfrecord-{i:05d}-of-00004" for i in range(4)]

    builder = tfds.builder_from_directory(str(tmp_path / "a"))
    assert builder.info.splits["train"].num_examples == 12
    features = builder.info.features
    assert isinstance(features["text"], tfds.features.Text)
    assert features["n"].dtype == np.int64 and features["score"].dtype == np.float32
    assert features["flag"].dtype == np.bool_ and features["tags"].shape == (None,)
    assert features["lang"].shape == (None,)  # absent from some records: a 0/1-element list
    got = {ex["id"].decode(): ex
           for ex in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert sorted(got) == [f"doc-{i:02d}" for i in range(12)]
    for i in range(12):
        ex, want = got[f"doc-{i:02d}"], records[i]
        for name in rec.OUTPUT_FIELDS:
            assert ex[name].decode() == want[name], name
        assert ex["n"] == i and ex["score"] == np.float32(i / 4) and ex["flag"] == (i % 2 == 0)
        assert list(ex["tags"]) == [b"t"] * (i % 3)
        assert list(ex["lang"]) == ([b"en"] if i % 2 else [])

    files_b, _ = run_write(list(reversed(records)), tmp_path / "b", num_shards=4)
    for fa, fb in zip(files, files_b):
        with open(fa, "rb") as a, open(fb, "rb") as b:
            assert a.read() == b.read(), fa

    # Rewriting with another shard count replaces the old shards; empty shards still exist.
    files_c, _ = run_write(records[:2], tmp_path / "a", num_shards=6)
    assert sorted(glob.glob(str(tmp_path / "a" / "refined-train.tfrecord-*"))) == files_c
    builder = tfds.builder_from_directory(str(tmp_path / "a"))
    assert len(list(builder.as_dataset(split="train"))) == 2


def test_read_tfds_input(tmp_path):
    data_dir = tmp_path / "data"
    version_dir = data_dir / "tiny" / "1.0.0"
    records = [refined(i, n=i, tags=["a", "b"][: i % 3]) for i in range(5)]
    run_write(records, version_dir, name="tiny", num_shards=2)

    got, dead, _ = run_read(tmp_path / "by_name", f"tfds://tiny?split=train&data_dir={data_dir}")
    assert dead == []
    assert [r["id"] for r in got] == [r["id"] for r in records]
    for r, want in zip(got, records):
        assert r == {**want, "tags": want["tags"]}  # lists stay lists (the features say so)

    got, _, _ = run_read(tmp_path / "by_dir", f"tfds://{version_dir}?split=train[:3]")
    assert len(got) == 3

    # A second split written later into the same directory keeps the first one loadable.
    run_write([refined(i, n=i, tags=["c"]) for i in range(10, 13)], version_dir, name="tiny",
              split="validation", num_shards=1)
    splits = tfds.builder_from_directory(str(version_dir)).info.splits
    assert {k: v.num_examples for k, v in splits.items()} == {"train": 5, "validation": 3}
    got, _, _ = run_read(tmp_path / "validation", "tiny", format="tfds", split="validation",
                         data_dir=str(data_dir))
    assert [r["tags"] for r in got] == [["c"]] * 3
    got, _, _ = run_read(tmp_path / "as_files",
                         f"{version_dir}/tiny-train.tfrecord-*", text_field="text")
    assert len(got) == 5

    with pytest.raises(ValueError, match="not found|not prepared"):
        gio.ReadRecords(f"tfds://nonexistent_ds?split=train&data_dir={tmp_path}")._plan()
    with pytest.raises(ValueError, match="no split"):
        gio.parse_tfds_uri("tfds://tiny")


def test_infer_format():
    assert gio.infer_format("gs://b/x/part-1.jsonl") == "jsonl"
    assert gio.infer_format("x.json") == "jsonl"
    assert gio.infer_format("x.jsonl.gz") == "jsonl"
    assert gio.infer_format("x.tfrecord") == "tfrecord"
    assert gio.infer_format("d/refined-train.tfrecord-00000-of-00004") == "tfrecord"
    assert gio.infer_format("d/refined-train.tfrecord-*") == "tfrecord"
    assert gio.infer_format("tfds://mnist?split=train") == "tfds"
    with pytest.raises(ValueError, match="cannot infer"):
        gio.infer_format("d/*")
