"""Counting and sampling an input without reading all of it (for `pipelines.refine --estimate`).

  records, bytes   TFDS: from the split's metadata (exact, nothing read). Files: sizes from the
                   filesystem's listing (exact, nothing read); records counted by reading at
                   most `max_scan_bytes` (bytes on disk, compressed bytes for .gz): exact when
                   that covers the input, else extrapolated by bytes (records/byte of what was
                   read x total bytes) and marked as an estimate.
  sample           n records drawn with a seeded RNG. Plain JSONL larger than the scan: n random
                   byte offsets over the whole input, each taking the line after it (spread over
                   the data, not only its head). Otherwise: reservoir sampling over the records
                   scanned (all of them when the scan covers the input).

Records here are raw payloads as stored (JSONL lines, serialized tf.train.Examples), so the
sample can be written back in its own format and read by the job's own reader.
"""

from __future__ import annotations

import dataclasses
import gzip
import random
from typing import List, Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from gdr_beam.beam.tfrecord import read_frames

DEFAULT_SCAN_BYTES = 32 << 20


@dataclasses.dataclass(frozen=True)
class Survey:
    files: int
    bytes: int
    records: int
    records_exact: bool
    how: str            # how `records` was obtained, for the user
    sample: tuple       # raw payloads
    sample_how: str     # how the sample was drawn


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


class _Counting:
    """A raw file object that counts the bytes read from it (compressed bytes under gzip)."""

    def __init__(self, f):
        self._f = f
        self.read_bytes = 0

    def read(self, n=-1):
        data = self._f.read(n)
        self.read_bytes += len(data)
        return data

    def readline(self, n=-1):
        data = self._f.readline(n)
        self.read_bytes += len(data)
        return data


def _records(path: str, fmt: str, raw):
    """Yields raw payloads of one file opened without decompression."""
    f = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
    if fmt == "jsonl":
        for line in iter(f.readline, b""):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield line
    else:
        for frame in read_frames(f):
            if frame.fatal:
                return
            yield frame.data


def survey(path: str, fmt: str, n: int, seed: int = 0, *, split: Optional[str] = None,
           max_scan_bytes: int = DEFAULT_SCAN_BYTES) -> Survey:
    """Size of the input and a seeded sample of `n` of its records (see the module doc)."""
    if fmt == "tfds":
        return _survey_tfds(path, split, n, seed, max_scan_bytes)
    matches = sorted(FileSystems.match([path])[0].metadata_list, key=lambda m: m.path)
    if not matches:
        raise ValueError(f"no input files match {path!r}")
    return _survey_files([(m.path, m.size_in_bytes) for m in matches], fmt, n, seed,
                         max_scan_bytes)


def _survey_files(files, fmt, n, seed, max_scan_bytes, *, known_records=None,
                  known_how="") -> Survey:
    total_bytes = sum(size for _, size in files)
    rng = random.Random(seed)
    reservoir: List[bytes] = []
    seen = scanned_bytes = 0
    complete = True
    for path, size in files:
        budget = max_scan_bytes - scanned_bytes
        if budget <= 0:
            complete = False
            break
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            raw = _Counting(f)
            for payload in _records(path, fmt, raw):
                seen += 1
                if len(reservoir) < n:
                    reservoir.append(payload)
                else:
                    j = rng.randrange(seen)
                    if j < n:
                        reservoir[j] = payload
                if raw.read_bytes >= budget and raw.read_bytes < size:
                    complete = False  # the scan's budget ends inside this file
                    break
        scanned_bytes += size if complete else raw.read_bytes
        if not complete:
            break
    read = human_bytes(scanned_bytes)
    if known_records is not None:
        records, exact, how = known_records, True, known_how
    elif complete:
        records, exact, how = seen, True, f"counted: all {len(files)} file(s) read"
    else:
        records = round(seen * total_bytes / max(scanned_bytes, 1))
        exact = False
        how = (f"estimated: {seen} records in the first {read} of "
               f"{human_bytes(total_bytes)}, extrapolated by bytes")
    if complete:
        sample_how = f"seeded reservoir sample (seed {seed}) over all {seen} records"
    elif fmt == "jsonl" and not any(p.endswith(".gz") for p, _ in files):
        reservoir = _offset_sample(files, n, seed)
        sample_how = (f"seeded random byte offsets (seed {seed}) over all "
                      f"{human_bytes(total_bytes)}, the line after each")
    else:
        sample_how = (f"seeded reservoir sample (seed {seed}) over the first {seen} records "
                      f"({read}): later records were not read")
    return Survey(files=len(files), bytes=total_bytes, records=records, records_exact=exact,
                  how=how, sample=tuple(reservoir), sample_how=sample_how)


def _offset_sample(files, n: int, seed: int) -> List[bytes]:
    """n distinct lines, each the first complete line after a uniform random byte offset."""
    rng = random.Random(seed)
    total = sum(size for _, size in files)
    picked: dict = {}
    for _ in range(n * 4):  # a few spare draws for offsets that land on the same line
        if len(picked) >= n:
            break
        offset = rng.randrange(total)
        for path, size in files:
            if offset < size:
                break
            offset -= size
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.seek(max(0, offset - 1))
            if offset > 0 and f.read(1) != b"\n":
                f.readline()  # the rest of the line the offset fell into
            start = f.tell()
            for line in iter(f.readline, b""):
                if line.strip():
                    picked.setdefault((path, start), line.rstrip(b"\r\n"))
                    break
                start = f.tell()
    return [picked[k] for k in sorted(picked)]


def _survey_tfds(uri, split, n, seed, max_scan_bytes) -> Survey:
    from gdr_beam.beam import io  # pylint: disable=import-outside-toplevel
    source = io.parse_tfds_uri(uri, split)
    builder = io._tfds_builder(source)  # pylint: disable=protected-access
    info = builder.info.splits[source.split]
    tasks, _ = io.tfds_read_plan(source)
    files = [(path, FileSystems.match([path])[0].metadata_list[0].size_in_bytes)
             for path, _, _ in tasks]
    survey_ = _survey_files(files, "tfrecord", n, seed, max_scan_bytes,
                            known_records=info.num_examples,
                            known_how=f"from the TFDS metadata of split {source.split!r}")
    return dataclasses.replace(survey_, bytes=int(info.num_bytes) or survey_.bytes)
