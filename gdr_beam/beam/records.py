"""The record-level data contract: normalising input records, dead letters, tf.train.Example codec.

Pure Python (plus the tf.train.Example proto), no Beam, so every rule is testable on its own and
the Beam transforms in `io.py` stay thin.

Decisions this module fixes (the design doc left them open):

* Text that is empty or only whitespace is a dead letter (`empty_text`): there is nothing to
  refine, and a whitespace-only "document" is nearly always an extraction bug upstream.
* A record without an id gets `sha256:<first 16 hex digits of sha256(text as UTF-8)>`. Two
  id-less records with identical text therefore share an id, and the later one becomes a
  `duplicate_id` dead letter: exact duplicates are caught, never silently merged.
* An integer id becomes its decimal string; any other non-string id, or an empty one, is
  `bad_id`. A JSON `null` id counts as absent.
* Pass-through fields keep their value when tf.train.Example can hold it: str, bytes, bool, int
  (64-bit), float, and flat lists of those. A list mixing bool/int/float is widened to the widest
  number kind. Anything else (objects, nested lists, lists mixing numbers and strings, integers
  outside int64) is JSON-encoded to a string (sorted keys, so it is deterministic), which keeps
  the information and never dead-letters a good text for its metadata. A `null` value is dropped:
  an Example has no null, and "absent" is what it means.
* Floats are stored as float32 (tf.train.Example's float_list) and bools as int64 0/1; they read
  back as float32-rounded floats and as ints.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Iterable, Mapping, Optional

import tensorflow as tf

STAGES = ("read", "prompt", "generate", "verify", "filter", "dedup", "write")
# Fields every refined output example carries, all strings. `changes` and `fallback_reasons`
# are JSON lists: the replaced spans, and for a `fallback` the verifier's reason code for each
# model attempt that failed (in attempt order; ["model_skipped"] when the task makes no model
# pass, see Task.use_model; [] for other verdicts). `segments` is [] unless the text was too
# long for one model reply: then one {"start", "end", "verdict"} per segment it was refined in
# (original offsets; verdict rewritten / unchanged / fallback). Outputs written before a field
# existed lack it: read a missing or empty value as [] (`json_list`).
OUTPUT_FIELDS = ("id", "text", "original_sha256", "task", "model", "verdict", "changes",
                 "fallback_reasons", "segments")
JSON_LIST_FIELDS = ("changes", "fallback_reasons", "segments")
VERDICTS = ("rewritten", "unchanged", "fallback", "rejected")
KINDS = ("bool", "int", "float", "str", "bytes")

_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_NUMBER_RANK = {"bool": 0, "int": 1, "float": 2}


class RecordError(ValueError):
    """A record that cannot go on; becomes a DeadLetter with this stage and reason."""

    def __init__(self, stage: str, reason: str, detail: str = ""):
        super().__init__(stage, reason, detail)
        self.stage = stage
        self.reason = reason
        self.detail = detail

    def __str__(self):  # detail may gain the source after construction
        return f"{self.stage}/{self.reason}: {self.detail}" if self.detail else \
            f"{self.stage}/{self.reason}"


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """An example that did not become an output, with enough to find it and rerun it.

    `payload` is the original bytes where the stage had them (the JSONL line, the serialized
    Example); later stages store `record_payload(record)`, itself a valid JSONL input line.
    `source` names where it came from: `path:line` (JSONL, 1-based), `path#index` (TFRecord,
    0-based). `reason` is a short code (it names a counter); `detail` is the human explanation.
    """
    id: str
    stage: str
    reason: str
    payload: bytes
    source: str = ""
    detail: str = ""

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"unknown dead-letter stage {self.stage!r}; expected one of {STAGES}")
        if not isinstance(self.payload, bytes):
            raise TypeError(f"DeadLetter.payload must be bytes, got {type(self.payload).__name__}")

    def to_json_line(self) -> str:
        row = dataclasses.asdict(self)
        row["payload"] = base64.b64encode(self.payload).decode("ascii")
        return json.dumps(row, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json_line(cls, line) -> "DeadLetter":
        row = json.loads(line)
        row["payload"] = base64.b64decode(row["payload"])
        return cls(**row)

    @classmethod
    def from_error(cls, error: RecordError, payload: bytes, *, id: str = "",
                   source: str = "") -> "DeadLetter":
        return cls(id=id, stage=error.stage, reason=error.reason, payload=payload,
                   source=source, detail=error.detail)


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """The Example type of one field: a kind from KINDS (None: only empty lists seen)."""
    kind: Optional[str]
    is_list: bool = False

    def merge(self, other: "FieldSpec") -> "FieldSpec":
        return FieldSpec(join_kinds(self.kind, other.kind), self.is_list or other.is_list)


def join_kinds(a: Optional[str], b: Optional[str]) -> Optional[str]:
    """The narrowest kind both values convert to without losing information.

    Commutative and associative, so a schema combined across workers does not depend on order.
    """
    if a is None or a == b:
        return b
    if b is None:
        return a
    if a in _NUMBER_RANK and b in _NUMBER_RANK:
        return a if _NUMBER_RANK[a] > _NUMBER_RANK[b] else b
    # Numbers and strings meet at a string; bytes absorb strings (UTF-8 encoded).
    return "bytes" if "bytes" in (a, b) else "str"


def scalar_kind(value) -> Optional[str]:
    """The kind of a value an Example can hold as-is, or None."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "bool"
    if isinstance(value, int):
        return "int" if _INT64_MIN <= value <= _INT64_MAX else None
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bytes"
    return None


def value_spec(value) -> FieldSpec:
    """FieldSpec of a value already passed through `coerce_field`."""
    if isinstance(value, list):
        kind = None
        for item in value:
            kind = join_kinds(kind, scalar_kind(item))
        return FieldSpec(kind, True)
    return FieldSpec(scalar_kind(value), False)


def convert(value, kind: str):
    """One scalar to `kind`, along the widenings `join_kinds` allows."""
    if scalar_kind(value) == kind:
        return value
    if kind == "int" and isinstance(value, bool):
        return int(value)
    if kind == "float" and isinstance(value, (bool, int)):
        return float(value)
    if kind == "str":
        return json.dumps(value)
    if kind == "bytes":
        return value.encode("utf-8") if isinstance(value, str) else json.dumps(value).encode()
    raise TypeError(f"cannot convert {type(value).__name__} to {kind}")


def _json_default(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _check_unicode(name: str, value: str, stage: str = "read") -> None:
    # json.loads accepts lone surrogates ("\ud800") that UTF-8 cannot encode; catch them here,
    # not as a crash when the Example is built.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RecordError(stage, "invalid_utf8", f"field {name!r}: {e}") from None


def coerce_field(name: str, value, stage: str = "read"):
    """A pass-through value as it will be stored (see the module docstring); None: drop it.

    Raises RecordError(stage, ...) for strings UTF-8 cannot encode and values JSON cannot.
    """
    if value is None:
        return None
    if isinstance(value, tuple):
        value = list(value)
    kind = scalar_kind(value)
    if kind == "str":
        _check_unicode(name, value, stage)
    if kind is not None:
        return value
    if isinstance(value, list):
        spec = value_spec(value)
        kinds = {scalar_kind(item) for item in value}
        if None not in kinds and (len(kinds) <= 1 or kinds <= set(_NUMBER_RANK)
                                  or kinds == {"str", "bytes"}):
            for item in value:
                if isinstance(item, str):
                    _check_unicode(name, item, stage)
            return [convert(item, spec.kind) for item in value]
    try:
        encoded = json.dumps(value, sort_keys=True, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError) as e:
        raise RecordError(stage, "unrepresentable_field", f"field {name!r}: {e}") from None
    _check_unicode(name, encoded, stage)
    return encoded


def json_list(value) -> list:
    """An output's JSON-list field (`changes`, `fallback_reasons`) as a list: bytes or str,
    missing/empty (older outputs) or not a JSON list -> []."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str) or not value:
        return []
    try:
        parsed = json.loads(value)
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def derive_id(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def text_sha256(text: str) -> str:
    """Full hex sha256 of the text as UTF-8 (the output's `original_sha256`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_json_object(raw) -> dict:
    """JSON text (str or UTF-8 bytes) -> dict, or RecordError (invalid_utf8, invalid_json,
    not_an_object)."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordError("read", "invalid_utf8", str(e)) from None
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise RecordError("read", "invalid_json", str(e)) from None
    if not isinstance(value, dict):
        raise RecordError("read", "not_an_object",
                          f"expected a JSON object, got {type(value).__name__}")
    return value


def _normalize_text(raw, text_field: str) -> str:
    text = raw.get(text_field)
    if text is None:
        raise RecordError("read", "missing_text", f"no {text_field!r} field")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordError("read", "invalid_utf8", f"field {text_field!r}: {e}") from None
    if not isinstance(text, str):
        raise RecordError("read", "text_not_string",
                          f"field {text_field!r} is {type(text).__name__}")
    _check_unicode(text_field, text)
    if not text.strip():
        raise RecordError("read", "empty_text", f"field {text_field!r} is empty or whitespace")
    return text


def _normalize_id(raw, id_field: str, text: str) -> str:
    value = raw.get(id_field)
    if value is None:
        return derive_id(text)
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError("read", "bad_id", f"field {id_field!r} is not UTF-8") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise RecordError("read", "bad_id", f"field {id_field!r} is {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError("read", "bad_id", f"field {id_field!r} is not valid Unicode") from None
    return value


def id_hint(raw, id_field: str = "id") -> str:
    """The input's own id, when it has a usable one, so a dead letter names its example
    even when the record itself could not be normalised."""
    if isinstance(raw, tf.train.Example):
        values = raw.features.feature[id_field].bytes_list.value
        return values[0].decode("utf-8", "replace") if values else ""
    if isinstance(raw, Mapping):
        value = raw.get(id_field)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
    return ""


def normalize_record(raw, *, text_field: str = "text", id_field: str = "id",
                     source: str = "") -> dict:
    """A JSON object (str/bytes), dict or tf.train.Example -> {"id", "text", **passthrough}.

    Raises RecordError (stage `read`) naming the reason; `source` only goes into its detail.
    """
    try:
        if isinstance(raw, tf.train.Example):
            raw = from_example(raw, text_field)
        elif isinstance(raw, (str, bytes, bytearray)):
            raw = parse_json_object(raw)
        elif not isinstance(raw, Mapping):
            raise RecordError("read", "not_an_object", f"got {type(raw).__name__}")
        return _normalize_mapping(raw, text_field, id_field)
    except RecordError as e:
        if source:
            e.detail = f"{source}: {e.detail}" if e.detail else source
        raise


def _normalize_mapping(raw: Mapping, text_field: str, id_field: str) -> dict:
    text = _normalize_text(raw, text_field)
    record = {"id": _normalize_id(raw, id_field, text), "text": text}
    for name in sorted(raw, key=str):
        if not isinstance(name, str):
            raise RecordError("read", "unrepresentable_field", f"field name {name!r}")
        if name in (text_field, id_field):
            continue
        if name in record:
            # e.g. text_field="body" while the input also has a "text" field: one would
            # overwrite the other.
            raise RecordError("read", "field_collision",
                              f"field {name!r} clashes with the normalised {name!r}")
        value = coerce_field(name, raw[name])
        if value is not None:
            record[name] = value
    return record


def record_payload(record: Mapping) -> bytes:
    """A normalised record as one JSON line (bytes values base64), for later stages' dead
    letters: a rerun reads it back as JSONL."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False,
                      default=_json_default).encode("utf-8")


def _feature(values: list, kind: Optional[str]) -> tf.train.Feature:
    if kind in ("bool", "int"):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if kind == "float":
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    if kind == "str":
        values = [v.encode("utf-8") for v in values]
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def to_example(record: Mapping, schema: Optional[Mapping[str, FieldSpec]] = None
               ) -> tf.train.Example:
    """A record of coerced values -> tf.train.Example (None values are left out).

    With a schema (from WriteRefined's inference) each value is first converted to its field's
    kind, so every example of a dataset has the same feature types. Serialize with
    `SerializeToString(deterministic=True)`: map order is otherwise unspecified.
    """
    features = {}
    for name, value in record.items():
        if value is None:
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        kind = schema[name].kind if schema and name in schema else value_spec(values).kind
        features[name] = _feature([convert(v, kind) for v in values], kind)
    return tf.train.Example(features=tf.train.Features(feature=features))


def _decode_bytes(name: str, values: Iterable[bytes], strict: bool, kind: Optional[str]):
    if kind == "bytes":
        return list(values)
    out = []
    for value in values:
        try:
            out.append(value.decode("utf-8"))
        except UnicodeDecodeError as e:
            if strict or kind == "str":
                raise RecordError("read", "invalid_utf8", f"field {name!r}: {e}") from None
            out.append(value)  # binary pass-through stays bytes
    return out


def from_example(ex: tf.train.Example, text_field: str = "text",
                 schema: Optional[Mapping[str, FieldSpec]] = None) -> dict:
    """tf.train.Example -> dict of Python values.

    bytes_list values become str when they are UTF-8 (the text field must be), int64_list ints,
    float_list floats. An Example does not say whether a field is a list: without a schema a
    single value reads as a scalar and any other count as a list; with one, its `is_list` and
    kind (bool, str, bytes) decide.
    """
    record = {}
    for name in sorted(ex.features.feature):
        feature = ex.features.feature[name]
        spec = schema.get(name) if schema else None
        which = feature.WhichOneof("kind")
        if which == "bytes_list":
            values = _decode_bytes(name, feature.bytes_list.value, name == text_field,
                                   spec.kind if spec else None)
        elif which == "int64_list":
            values = list(feature.int64_list.value)
            if spec and spec.kind == "bool":
                values = [bool(v) for v in values]
        elif which == "float_list":
            values = list(feature.float_list.value)
        else:
            values = []
        is_list = spec.is_list if spec else len(values) != 1
        if is_list:
            record[name] = values
        elif values:
            record[name] = values[0]
    return record
