"""Beam I/O for GDR: read records into the data contract; write refined TFDS shards, dead letters.

* `ReadRecords`: JSONL, TFRecord (serialized tf.train.Example) or a prepared TFDS dataset ->
  normalised records (main output `records`) and DeadLetters (output `dead_letter`). Every input
  example ends in exactly one of the two.
* `WriteRefined`: refined records -> `{name}-{split}.tfrecord-XXXXX-of-YYYYY` plus TFDS metadata,
  so `tfds.builder_from_directory(output_dir)` loads them with typed features.
* `WriteDeadLetters`: DeadLetters -> `dead_letter-XXXXX-of-YYYYY.jsonl`.

Outputs are byte-for-byte deterministic: shard = hash(id) mod a shard count fixed by the input,
records sorted within a shard, Example maps serialized deterministically. So a retried bundle
rewrites identical bytes and two runs can be compared with `cmp`.

Files are read whole by one worker each (line numbers and TFRecord positions need a sequential
read), so split big inputs into many files for parallelism. TFRecord files are read with our own
framing reader, which checks both CRCs: a record whose data CRC fails becomes a dead letter and
reading goes on (the framing is intact); a bad length CRC or a truncated file ends that file with
one `corrupt_tfrecord` dead letter, because nothing after it can be located.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import urllib.parse
import uuid
import zlib
from typing import Mapping, Optional, Sequence

import apache_beam as beam
from absl import logging
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from gdr_beam.beam import records as rec
from gdr_beam.beam.tfrecord import read_frames, write_frame

FORMATS = ("jsonl", "tfrecord", "tfds")
DEAD_LETTER = "dead_letter"
DEFAULT_TARGET_SHARD_BYTES = 256 << 20


def count(stage: str, reason: str, n: int = 1) -> None:
    Metrics.counter("gdr", f"gdr/{stage}/{reason}").inc(n)


# --- Reading ----------------------------------------------------------------------------------

_JSONL = re.compile(r"\.(jsonl|json|ndjson)$")
_TFRECORD = re.compile(r"\.tfrecords?($|[-*?\[.])")


def infer_format(path: str) -> str:
    """`jsonl` for .jsonl/.json/.ndjson (optionally .gz), `tfrecord` for .tfrecord, .tfrecord.gz
    and TFDS-style `*.tfrecord-XXXXX-of-YYYYY`, `tfds` for tfds:// URIs."""
    if path.startswith("tfds://"):
        return "tfds"
    base = path.rstrip("/").rsplit("/", 1)[-1].lower()
    base = base[:-3] if base.endswith(".gz") else base
    if _JSONL.search(base):
        return "jsonl"
    if _TFRECORD.search(base):
        return "tfrecord"
    raise ValueError(f"cannot infer the format of {path!r}; pass format= one of {FORMATS}")


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A prepared TFDS split: by registered `name` (+ `data_dir`), or by `builder_dir`."""
    split: str
    name: str = ""
    data_dir: Optional[str] = None
    builder_dir: Optional[str] = None


def parse_tfds_uri(uri: str, split: Optional[str] = None,
                   data_dir: Optional[str] = None) -> TfdsSource:
    """`tfds://name[/config][:version]?split=train&data_dir=DIR`, `tfds:///builder/dir?split=..`
    (a directory holding dataset_info.json), or a bare name / directory with `split` given."""
    if uri.startswith("tfds://"):
        parts = urllib.parse.urlsplit(uri)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        unknown = set(query) - {"split", "data_dir"}
        if unknown:
            raise ValueError(f"unknown tfds:// parameters {sorted(unknown)} in {uri!r}")
        split = query.get("split", split)
        data_dir = query.get("data_dir", data_dir)
        name = (parts.netloc + parts.path).strip("/")
        builder_dir = None if parts.netloc else parts.path
    else:
        is_dir = FileSystems.exists(FileSystems.join(uri, "dataset_info.json"))
        builder_dir = uri if is_dir else None
        name = uri
    if not split:
        raise ValueError(f"no split given for TFDS input {uri!r} (add ?split=train)")
    if builder_dir:
        return TfdsSource(split=split, builder_dir=builder_dir)
    return TfdsSource(split=split, name=name, data_dir=data_dir)


def _tfds_builder(source: TfdsSource):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    if source.builder_dir:
        return tfds.builder_from_directory(source.builder_dir)
    try:
        builder = tfds.builder(source.name, data_dir=source.data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(f"TFDS dataset {source.name!r} not found (data_dir="
                         f"{source.data_dir}): {e}") from e
    if not builder.is_prepared():
        raise ValueError(f"TFDS dataset {source.name!r} is not prepared in {builder.data_dir}; "
                         "ReadRecords never downloads: run `tfds build` first or pass data_dir")
    return builder


def _schema_from_features(features) -> dict:
    """FieldSpecs for top-level scalar and 1-D features, so lists and bools read back as such."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    schema = {}
    for name, feature in features.items():
        if isinstance(feature, tfds.features.Text):
            schema[name] = rec.FieldSpec("str")
            continue
        if type(feature) is not tfds.features.Tensor or len(feature.shape) > 1:
            continue  # images, nested features...: decoded without a schema
        dtype = tf.as_dtype(feature.dtype)
        kind = ("bool" if dtype == tf.bool else "int" if dtype.is_integer
                else "float" if dtype.is_floating else None)
        schema[name] = rec.FieldSpec(kind, len(feature.shape) == 1)
    return schema


def tfds_read_plan(source: TfdsSource):
    """(file tasks [(path, skip, take)], schema) for a TFDS split, at pipeline construction."""
    builder = _tfds_builder(source)
    file_format = getattr(builder.info.file_format, "value", builder.info.file_format)
    if file_format not in (None, "tfrecord"):
        raise ValueError(f"TFDS dataset in {file_format} format; only tfrecord is supported")
    if source.split not in builder.info.splits and "[" not in source.split:
        raise ValueError(f"split {source.split!r} not in {list(builder.info.splits)}")
    tasks = [(str(fi.filename), fi.skip, fi.take)
             for fi in builder.info.splits[source.split].file_instructions]
    return tasks, _schema_from_features(builder.info.features)


class _ReadFile(beam.DoFn):
    """(path, skip, take) -> keyed records for dedup + DeadLetters for what cannot be read."""

    def __init__(self, fmt: str, text_field: str, id_field: str, schema: Optional[dict] = None):
        self._fmt = fmt
        self._text_field = text_field
        self._id_field = id_field
        self._schema = schema

    def process(self, task):
        path, skip, take = task
        with FileSystems.open(path) as f:
            try:
                if self._fmt == "jsonl":
                    yield from self._jsonl(path, f)
                else:
                    yield from self._tfrecord(path, f, skip, take)
            except (zlib.error, EOFError) as e:  # a corrupt .gz: the rest of the file is lost
                yield _dead("", "unreadable_file", b"", path,
                            f"{type(e).__name__}: {e}; the rest of the file was not read")

    def _keyed(self, raw, path, position, source, payload):
        try:
            record = rec.normalize_record(raw, text_field=self._text_field,
                                          id_field=self._id_field)
        except rec.RecordError as e:
            return beam.pvalue.TaggedOutput(DEAD_LETTER, rec.DeadLetter.from_error(
                e, payload, id=rec.id_hint(raw, self._id_field), source=source))
        return record["id"], (path, position, source, record)

    def _jsonl(self, path, f):
        for lineno, line in enumerate(iter(f.readline, b""), start=1):
            line = line[:-1] if line.endswith(b"\n") else line
            line = line[:-1] if line.endswith(b"\r") else line
            if not line.strip():
                count("read", "blank_lines")  # not an example: nothing to refine or lose
                continue
            source = f"{path}:{lineno}"
            try:
                # Parsed here, not in normalize_record, so later errors can name the input's id.
                obj = rec.parse_json_object(line)
            except rec.RecordError as e:
                yield _dead("", e.reason, line, source, e.detail)
                continue
            yield self._keyed(obj, path, lineno, source, line)

    def _tfrecord(self, path, f, skip, take):
        end = math.inf if take is None or take < 0 else skip + take
        for frame in read_frames(f):
            source = f"{path}#{frame.index}"
            if frame.fatal:
                yield _dead("", "corrupt_tfrecord", b"", source,
                            f"{frame.error} at byte {frame.offset}; record {frame.index} and "
                            "all later records of this file were not read")
                return
            if frame.index >= end:
                return
            if frame.index < skip:
                continue
            if frame.error:
                yield _dead("", "corrupt_record", frame.data, source,
                            f"{frame.error} at byte {frame.offset}; later records still read")
                continue
            yield self._example(frame.data, path, frame.index, source)

    def _example(self, data, path, index, source):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        try:
            example = tf.train.Example.FromString(data)
        except Exception as e:  # pylint: disable=broad-except  # protobuf's DecodeError
            return _dead("", "invalid_example", data, source, f"{type(e).__name__}: {e}")
        try:
            raw = rec.from_example(example, self._text_field, self._schema)
        except rec.RecordError as e:
            return _dead(_example_id(example, self._id_field), e.reason, data, source, e.detail)
        return self._keyed(raw, path, index, source, data)


def _example_id(example, id_field: str) -> str:
    feature = example.features.feature.get(id_field)
    if feature is not None and len(feature.bytes_list.value) == 1:
        return feature.bytes_list.value[0].decode("utf-8", "replace")
    if feature is not None and len(feature.int64_list.value) == 1:
        return str(feature.int64_list.value[0])
    return ""


def _dead(rid, reason, payload, source, detail, stage="read"):
    return beam.pvalue.TaggedOutput(DEAD_LETTER, rec.DeadLetter(
        id=rid, stage=stage, reason=reason, payload=payload, source=source, detail=detail))


def _keep_first(element):
    """All occurrences of one id -> the first by (file, position), later ones dead letters."""
    rid, entries = element
    entries = sorted(entries, key=lambda e: (e[0], e[1]))
    yield entries[0][3]
    for _, _, source, record in entries[1:]:
        yield _dead(rid, "duplicate_id", rec.record_payload(record), source,
                    f"id first seen at {entries[0][2]}")


class _Route(beam.DoFn):
    """(is_dead, value) -> main or dead_letter output, counting both as they leave."""

    def __init__(self, stage: str, main_counter: Optional[str]):
        self._stage = stage
        self._main_counter = main_counter

    def process(self, item):
        is_dead, value = item
        if is_dead:
            count(value.stage, value.reason)
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, value)
        else:
            if self._main_counter:
                count(self._stage, self._main_counter)
            yield value


def _route(main, dead: Sequence, stage: str, main_tag: str, main_counter: Optional[str] = None):
    """One ParDo with two outputs, so callers get a DoOutputsTuple (`.dead_letter`, unpacking)."""
    tagged = [main | "TagMain" >> beam.Map(lambda v: (False, v))]
    tagged += [d | f"TagDead{i}" >> beam.Map(lambda v: (True, v)) for i, d in enumerate(dead)]
    return (tagged | "Merge" >> beam.Flatten()
            | "Route" >> beam.ParDo(_Route(stage, main_counter)).with_outputs(
                DEAD_LETTER, main=main_tag))


class ReadRecords(beam.PTransform):
    """Input files or a TFDS split -> outputs `records` (normalised dicts) and `dead_letter`.

    `format`: jsonl, tfrecord or tfds; inferred from the path when None (see infer_format).
    For tfds, `path_or_pattern` is a tfds:// URI or a name / builder directory with `split`
    (and `data_dir`) given. Files are matched when the pipeline is built, with FileSystems
    (local, gs://, ...); no match is an error then. Of records sharing an id, the first by
    (file path, line / record index) is kept and the others become `duplicate_id` dead letters.
    """

    # pylint: disable-next=redefined-builtin
    def __init__(self, path_or_pattern: str, format: Optional[str] = None,
                 text_field: str = "text", id_field: str = "id", *,
                 split: Optional[str] = None, data_dir: Optional[str] = None):
        super().__init__()
        self._path = path_or_pattern
        self._format = format or infer_format(path_or_pattern)
        if self._format not in FORMATS:
            raise ValueError(f"unknown format {self._format!r}; expected one of {FORMATS}")
        self._text_field = text_field
        self._id_field = id_field
        self._split = split
        self._data_dir = data_dir

    def _plan(self):
        if self._format == "tfds":
            tasks, schema = tfds_read_plan(parse_tfds_uri(self._path, self._split,
                                                          self._data_dir))
            return tasks, "tfrecord", schema
        matches = FileSystems.match([self._path])[0].metadata_list
        paths = sorted(m.path for m in matches)
        if not paths:
            raise ValueError(f"no input files match {self._path!r}")
        logging.info("ReadRecords: %d %s file(s) match %s", len(paths), self._format, self._path)
        return [(p, 0, -1) for p in paths], self._format, None

    def expand(self, pbegin):
        tasks, fmt, schema = self._plan()
        read = (pbegin
                | "Files" >> beam.Create(tasks)
                | "Spread" >> beam.Reshuffle()
                | "Read" >> beam.ParDo(_ReadFile(fmt, self._text_field, self._id_field, schema)
                                       ).with_outputs(DEAD_LETTER, main="keyed"))
        dedup = (read.keyed
                 | "GroupById" >> beam.GroupByKey()
                 | "KeepFirst" >> beam.FlatMap(_keep_first).with_outputs(DEAD_LETTER,
                                                                         main="records"))
        return _route(dedup.records, [read.dead_letter, dedup.dead_letter], "read", "records",
                      "records")


# --- Writing ----------------------------------------------------------------------------------

def shard_index(key: str, num_shards: int) -> int:
    # sha256, not hash(): Python salts str hashes per process, and shards must not move.
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % num_shards


def shard_path(output_dir: str, prefix: str, index: int, num_shards: int, suffix: str = "") -> str:
    return FileSystems.join(output_dir, f"{prefix}-{index:05d}-of-{num_shards:05d}{suffix}")


def _write_atomically(path: str, write) -> None:
    """Write via a temp file and rename, so a reader never sees a half-written shard."""
    directory, base = path.rsplit("/", 1)
    tmp = FileSystems.join(directory, f".tmp-{uuid.uuid4().hex}-{base}")
    with FileSystems.create(tmp) as f:
        write(f)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def _delete_stale_shards(output_dir: str, prefix: str, suffix: str, keep: Sequence[str]) -> None:
    """Shards of a previous run with another shard count would be read by glob readers."""
    pattern = FileSystems.join(output_dir, f"{prefix}-*-of-*{suffix}")
    stale = sorted(set(m.path for m in FileSystems.match([pattern])[0].metadata_list)
                   - set(keep))
    if stale:
        logging.info("Deleting %d stale shard(s) of a previous run: %s", len(stale), stale[:3])
        FileSystems.delete(stale)


def _write_missing_shards(paths: Sequence[str], written: set, empty: bytes = b"") -> None:
    # Hash sharding can leave a shard empty; every XXXXX-of-YYYYY must still exist.
    for i, path in enumerate(paths):
        if i not in written:
            _write_atomically(path, lambda f: f.write(empty))


def _coerce_output(record) -> dict:
    """A refined record -> the values written, or RecordError (stage write)."""
    if not isinstance(record, Mapping):
        raise rec.RecordError("write", "invalid_record", f"not a dict: {type(record).__name__}")
    if not isinstance(record.get("id"), str) or not record["id"]:
        raise rec.RecordError("write", "invalid_record", f"id is {record.get('id')!r}")
    if not isinstance(record.get("text"), str):
        raise rec.RecordError("write", "invalid_record", f"text is {type(record.get('text'))}")
    out = {}
    for name in rec.OUTPUT_FIELDS:
        value = record.get(name)
        if value is None:
            value = ""  # every output example has every contract field, empty when unknown
        elif name in rec.JSON_LIST_FIELDS and isinstance(value, (list, tuple)):
            value = json.dumps(list(value), sort_keys=True, ensure_ascii=False)
        if not isinstance(value, str):
            raise rec.RecordError("write", "bad_field",
                                  f"field {name!r} is {type(value).__name__}, not str")
        out[name] = value
    for name in sorted(set(record) - set(rec.OUTPUT_FIELDS)):
        value = rec.coerce_field(name, record[name], stage="write")
        if value is not None:
            out[name] = value
    return out


def _prepare_output(record):
    try:
        yield _coerce_output(record)
    except rec.RecordError as e:
        rid = record.get("id", "") if isinstance(record, Mapping) else ""
        yield beam.pvalue.TaggedOutput(DEAD_LETTER, rec.DeadLetter.from_error(
            e, _safe_payload(record), id=rid if isinstance(rid, str) else str(rid)))


def _safe_payload(record) -> bytes:
    try:
        return rec.record_payload(record)
    except (TypeError, ValueError):  # not JSON-able (the reason it is a dead letter)
        return repr(record).encode("utf-8", "backslashreplace")


@dataclasses.dataclass(frozen=True)
class WritePlan:
    """What every shard writer must agree on, computed once over all records."""
    schema: Mapping[str, rec.FieldSpec]
    num_records: int
    num_shards: int


def _estimated_size(record: Mapping) -> int:
    size = 0
    for name, value in record.items():
        for item in value if isinstance(value, list) else [value]:
            size += len(item) if isinstance(item, (str, bytes)) else 8
        size += len(name) + 4
    return size


class _PlanFn(beam.CombineFn):
    """Infers the schema (kind join over all records; a field some records lack becomes a
    list, missing = empty) and the shard count (explicit, or from the estimated size)."""

    def __init__(self, num_shards: Optional[int], target_shard_bytes: int):
        super().__init__()
        self._num_shards = num_shards
        self._target = target_shard_bytes

    def create_accumulator(self):
        return 0, 0, {}

    def add_input(self, acc, record):
        n, size, fields = acc
        for name, value in record.items():
            spec = rec.value_spec(value)
            old, present = fields.get(name, (spec, 0))
            fields[name] = (old.merge(spec), present + 1)
        return n + 1, size + _estimated_size(record), fields

    def merge_accumulators(self, accumulators):
        n, size, fields = 0, 0, {}
        for acc_n, acc_size, acc_fields in accumulators:
            n, size = n + acc_n, size + acc_size
            for name, (spec, present) in acc_fields.items():
                old, old_present = fields.get(name, (spec, 0))
                fields[name] = (old.merge(spec), old_present + present)
        return n, size, fields

    def extract_output(self, acc):
        n, size, fields = acc
        schema = {name: rec.FieldSpec("str") for name in rec.OUTPUT_FIELDS}
        for name, (spec, present) in fields.items():
            if name not in rec.OUTPUT_FIELDS:
                schema[name] = rec.FieldSpec(spec.kind, spec.is_list or present < n)
        num_shards = self._num_shards or min(max(1, math.ceil(size / self._target)), max(1, n))
        return WritePlan(schema=schema, num_records=n, num_shards=num_shards)


def tfds_features(schema: Mapping[str, rec.FieldSpec]):
    """FieldSpecs -> tfds FeaturesDict: Text for scalar strings, typed Tensors otherwise."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    dtypes = {"bool": tf.bool, "int": tf.int64, "float": tf.float32, "str": tf.string,
              "bytes": tf.string, None: tf.string}
    features = {}
    for name in sorted(schema):
        spec = schema[name]
        if spec.kind == "str" and not spec.is_list:
            features[name] = tfds.features.Text()
        else:
            features[name] = tfds.features.Tensor(shape=(None,) if spec.is_list else (),
                                                  dtype=dtypes[spec.kind])
    return tfds.features.FeaturesDict(features)


class _WriteExampleShard(beam.DoFn):
    def __init__(self, output_dir: str, prefix: str):
        self._output_dir = output_dir
        self._prefix = prefix

    def process(self, element, plan: WritePlan):
        shard, records = element
        rows = sorted((r["id"], rec.to_example(r, plan.schema).SerializeToString(
            deterministic=True)) for r in records)
        path = shard_path(self._output_dir, self._prefix, shard, plan.num_shards)

        def write(f):
            for _, data in rows:
                write_frame(f, data)

        _write_atomically(path, write)
        count("write", "records", len(rows))
        yield shard, len(rows), sum(len(data) for _, data in rows)


def _other_splits(output_dir: str, split: str, features) -> list:
    """SplitInfos of other splits already in output_dir (written by earlier runs), which the
    metadata must keep; their features must match, or one split would not load."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    if not FileSystems.exists(FileSystems.join(output_dir, "dataset_info.json")):
        return []
    old = tfds.builder_from_directory(output_dir).info
    others = [info for name, info in old.splits.items() if name != split]
    if others and old.features.get_serialized_info() != features.get_serialized_info():
        raise ValueError(
            f"{output_dir} holds splits {[s.name for s in others]} whose features differ "
            f"from split {split!r}'s; write it to another directory")
    return others


class _FinalizeDataset(beam.DoFn):
    def __init__(self, output_dir: str, name: str, split: str, description: str):
        self._output_dir = output_dir
        self._name = name
        self._split = split
        self._description = description

    def process(self, shard_stats, plan: WritePlan):
        import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
        prefix = f"{self._name}-{self._split}.tfrecord"
        paths = [shard_path(self._output_dir, prefix, i, plan.num_shards)
                 for i in range(plan.num_shards)]
        lengths, num_bytes = [0] * plan.num_shards, 0
        for shard, n, size in shard_stats:
            lengths[shard], num_bytes = n, num_bytes + size
        _write_missing_shards(paths, {s for s, _, _ in shard_stats})
        _delete_stale_shards(self._output_dir, prefix, "", paths)
        features = tfds_features(plan.schema)
        splits = _other_splits(self._output_dir, self._split, features)
        splits.append(tfds.core.SplitInfo(name=self._split, shard_lengths=lengths,
                                          num_bytes=num_bytes))
        tfds.folder_dataset.write_metadata(
            data_dir=self._output_dir, features=features, split_infos=splits,
            check_data=False, description=self._description,
            # Order is part of the output: as_dataset yields shards in order, unshuffled.
            disable_shuffling=True)
        logging.info("WriteRefined: %d records in %d shards of %s", sum(lengths), len(paths),
                     self._output_dir)
        yield from paths


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class WriteRefined(beam.PTransform):
    """Refined records -> TFDS dataset in `output_dir`; outputs `files` and `dead_letter`.

    Each record needs a string `id` and `text`; the other contract fields (original_sha256,
    task, model, verdict, changes, fallback_reasons, segments) are written as "" when absent
    (the JSON-list fields may also be lists, stored as JSON). Pass-through fields are typed from all records (see _PlanFn). A record
    that cannot be written is a `write` dead letter. With `num_shards` None the count is
    derived from the estimated data size (`target_shard_bytes` per shard), so it too depends
    only on the input. Shards of an earlier run with another shard count are deleted.
    """

    def __init__(self, output_dir: str, name: str = "refined", split: str = "train",
                 num_shards: Optional[int] = None, *,
                 target_shard_bytes: int = DEFAULT_TARGET_SHARD_BYTES, description: str = ""):
        super().__init__()
        for what, value in (("name", name), ("split", split)):
            if not _NAME.match(value):
                # TFDS parses both back out of the shard file names.
                raise ValueError(f"{what} {value!r} must match {_NAME.pattern}")
        if num_shards is not None and num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")
        self._output_dir = output_dir.rstrip("/")
        self._name = name
        self._split = split
        self._num_shards = num_shards
        self._target = target_shard_bytes
        self._description = description

    def expand(self, records):
        prepared = records | "Prepare" >> beam.FlatMap(_prepare_output).with_outputs(
            DEAD_LETTER, main="records")
        plan = beam.pvalue.AsSingleton(
            prepared.records | "Plan" >> beam.CombineGlobally(_PlanFn(self._num_shards,
                                                                      self._target)))
        prefix = f"{self._name}-{self._split}.tfrecord"
        files = (prepared.records
                 | "AssignShard" >> beam.Map(lambda r, p: (shard_index(r["id"], p.num_shards), r),
                                             p=plan)
                 | "GroupByShard" >> beam.GroupByKey()
                 | "WriteShard" >> beam.ParDo(_WriteExampleShard(self._output_dir, prefix),
                                              plan=plan)
                 | "ShardStats" >> beam.combiners.ToList()
                 | "Finalize" >> beam.ParDo(_FinalizeDataset(self._output_dir, self._name,
                                                             self._split, self._description),
                                            plan=plan))
        return _route(files, [prepared.dead_letter], "write", "files")


class _WriteLines(beam.DoFn):
    def __init__(self, output_dir: str, prefix: str, suffix: str, num_shards: int):
        self._args = output_dir, prefix, suffix, num_shards

    def process(self, element):
        output_dir, prefix, suffix, num_shards = self._args
        shard, lines = element
        lines = sorted(lines)
        path = shard_path(output_dir, prefix, shard, num_shards, suffix)
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        _write_atomically(path, lambda f: f.write(data))
        yield shard


class _FinalizeLines(beam.DoFn):
    def __init__(self, output_dir: str, prefix: str, suffix: str, num_shards: int):
        self._args = output_dir, prefix, suffix, num_shards

    def process(self, written):
        output_dir, prefix, suffix, num_shards = self._args
        paths = [shard_path(output_dir, prefix, i, num_shards, suffix) for i in range(num_shards)]
        _write_missing_shards(paths, set(written))
        _delete_stale_shards(output_dir, prefix, suffix, paths)
        yield from paths


class WriteDeadLetters(beam.PTransform):
    """DeadLetters -> `{prefix}-XXXXX-of-YYYYY.jsonl` (DeadLetter.to_json_line, lines sorted);
    outputs the file paths. All shards are written, empty ones too, so a reader of a run
    with no dead letters finds an empty file rather than nothing."""

    def __init__(self, output_dir: str, num_shards: int = 1, prefix: str = "dead_letter"):
        super().__init__()
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")
        self._args = output_dir.rstrip("/"), prefix, ".jsonl", num_shards

    def expand(self, dead_letters):
        num_shards = self._args[3]
        return (dead_letters
                | "ToJson" >> beam.Map(lambda d: d.to_json_line())
                | "AssignShard" >> beam.Map(lambda line: (shard_index(line, num_shards), line))
                | "GroupByShard" >> beam.GroupByKey()
                | "WriteShard" >> beam.ParDo(_WriteLines(*self._args))
                | "Written" >> beam.combiners.ToList()
                | "Finalize" >> beam.ParDo(_FinalizeLines(*self._args)))
