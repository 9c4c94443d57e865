"""Deduplication: exact (normalised text hash) and near (MinHash LSH, verified by Jaccard).

    kept, dropped = records | Deduplicate()                  # exact, then near
    kept, dropped = records | Deduplicate(near=None)         # exact only
    kept, dropped = records | NearDedup(NearDedupConfig(threshold=0.9))

`dropped` holds one `DeadLetter(stage="dedup", reason=...)` per dropped record, and every drop
increments the Beam counter `gdr/dedup/<reason>`. Reasons:

  exact_duplicate   same text as a record of smaller id, after `normalize_for_dedup`
  near_duplicate    Jaccard similarity of the word-shingle sets >= threshold with a record of
                    smaller id
  missing_text      `text` absent or not a string (QualityFilter drops these first; here so
                    the transforms stand alone without losing anything)

Which record survives is fixed by the ids, not by arrival order: the smallest id (Python string
order) wins, so two runs, or two runners, give the same output.

Near dedup, as Beam stages that all scale out (no side input holds the dataset):
  1. Bands       each record's shingles -> datasketch MinHash (seeded: the same permutations
                 in every process) -> one key (band index, hash of the band's rows) per band
  2. Buckets     GroupByKey on the band key; every pair of ids sharing a bucket is a candidate
                 (huge buckets capped, see `NearDedupConfig.max_bucket_size`), pairs
                 deduplicated across bands
  3. Verify      CoGroupByKey by the smaller id ships its shingle set to the larger id, a second
                 CoGroupByKey by the larger id meets that record; the true Jaccard of the two
                 shingle sets decides (LSH only proposes; this removes its false positives)
  4. Decide      a record with at least one verified duplicate of smaller id is dropped

The decision rule (step 4) is pairwise, not "one record per connected component": it is local
to each record's own verified pairs, so it needs no iterative graph algorithm (Beam pipelines
have no loops; connected components would need an unrolled, unbounded number of rounds). What
it guarantees: no two kept records are verified near duplicates of each other, and every group
keeps its smallest id. Where it differs from text-dedup's union-find (one kept per component):
  * a ~ c and b ~ c but a !~ b (a < b < c): both a and b are kept, c is dropped. Union-find
    would drop b too, though nothing kept resembles it.
  * a chain a ~ b ~ c with a !~ c: b and c are dropped, as union-find would; c then names b,
    itself dropped, in its detail. c's text is not represented by anything kept; at a threshold
    of 0.8 such chains are short and rare, but a lower threshold makes them more common.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import unicodedata
from typing import Iterable, List, NamedTuple, Optional

import apache_beam as beam
import numpy as np

from gdr_beam.beam import records as rec
from gdr_beam.beam.io import count

STAGE = "dedup"
DROPPED = "dropped"
REASONS = ("exact_duplicate", "near_duplicate", "missing_text")

# datasketch 2.0's default scheme, named explicitly: a future default must not silently change
# every signature (and so which records are candidates).
_MINHASH_SCHEME = "affine32"


# --- Normalisation and shingles -----------------------------------------------------------------

def _strip_punctuation(token: str) -> str:
    start, end = 0, len(token)
    while start < end and unicodedata.category(token[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(token[end - 1]).startswith("P"):
        end -= 1
    return token[start:end]


def normalize_for_dedup(text: str) -> str:
    """The text as dedup compares it.

    Normalised: Unicode compatibility forms (NFKC: full-width letters, ligatures, non-breaking
    spaces, superscript digits...), case (str.casefold, so "Straße" == "STRASSE"), every run of
    Unicode whitespace (newlines and tabs included) to one space, and punctuation (Unicode
    category P*) at the two edges of the text: a rewrite that only adds a final period or
    quotes is the same text.
    Not normalised: punctuation inside the text, accents and diacritics (NFKC keeps "é"), digits
    and numbers, symbols and emoji, zero-width and other format characters, word order. Those
    differences are left to near dedup, which tolerates a few of them.
    """
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return _strip_punctuation(text)


def words_for_dedup(text: str) -> List[str]:
    """The normalised text's words, each stripped of edge punctuation; tokens that were only
    punctuation ("-", "--") are dropped, so "a - b" and "a b" shingle alike."""
    words = (_strip_punctuation(w) for w in normalize_for_dedup(text).split(" "))
    return [w for w in words if w]


def shingles(text: str, n: int) -> List[str]:
    """Word n-grams of the text (joined by spaces; words contain none). A text of fewer than n
    words gives its whole word sequence as its one shingle; a text without words gives none."""
    words = words_for_dedup(text)
    if not words:
        return []
    if len(words) < n:
        return [" ".join(words)]
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """The shingle set as sorted, unique 64-bit hashes (blake2b): compact to ship between
    workers and fast to intersect. Two distinct shingles collide with probability ~2^-64 per
    pair, so the Jaccard of these sets is the Jaccard of the shingle sets themselves."""
    digests = {hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest()
               for s in shingles(text, n)}
    return np.sort(np.frombuffer(b"".join(digests), dtype="<u8"))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays (0 when both are empty)."""
    if len(a) == 0 and len(b) == 0:
        return 0.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (len(a) + len(b) - inter)


def _to_bytes(hashes: np.ndarray) -> bytes:
    return hashes.astype("<u8").tobytes()


def _from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u8")


# --- Configuration and LSH ----------------------------------------------------------------------

def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that two texts of Jaccard `similarity` share at least one LSH bucket:
    1 - (1 - s^rows)^bands (each MinHash row agrees with probability s; a band needs all its
    rows to agree; any one band makes them candidates)."""
    return 1.0 - (1.0 - similarity ** rows) ** bands


@dataclasses.dataclass(frozen=True)
class NearDedupConfig:
    """MinHash LSH settings.

    num_perm = bands * rows: the signature length. With the defaults (16 bands of 8 rows) a
        pair at Jaccard 0.8 becomes a candidate with probability 0.947, at 0.85 with 0.994, at
        0.9 with 0.9999, at 0.7 with 0.61, at 0.5 with 0.06 (then rejected by verification): see
        `candidate_probability`. More bands of fewer rows raise recall near the threshold and
        the number of candidate pairs to verify.
    ngram: word shingle length (texts shorter than that use their whole word sequence).
    threshold: minimum true Jaccard of the shingle sets for a verified near duplicate.
    seed: MinHash permutation seed; the same seed in every worker gives the same signatures.
    max_bucket_size: a bucket with more ids (boilerplate shared by thousands of texts) would
        give a quadratic number of pairs. Beyond it, only the max_bucket_size smallest ids are
        paired with each other, and every other id is paired with the bucket's smallest id
        only; the pairs left out are counted (`gdr/dedup/lsh_pairs_skipped`, and the buckets
        `gdr/dedup/lsh_bucket_capped`). The other bands still see those records.
    """
    num_perm: int = 128
    bands: int = 16
    rows: int = 8
    ngram: int = 5
    threshold: float = 0.8
    seed: int = 1
    max_bucket_size: int = 100

    def __post_init__(self):
        for name in ("num_perm", "bands", "rows", "ngram"):
            if getattr(self, name) < 1:
                raise ValueError(f"NearDedupConfig.{name} must be >= 1, got "
                                 f"{getattr(self, name)}")
        if self.bands * self.rows != self.num_perm:
            raise ValueError(f"NearDedupConfig: bands * rows must equal num_perm, got "
                             f"{self.bands} * {self.rows} != {self.num_perm}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"NearDedupConfig.threshold must be in (0, 1], got "
                             f"{self.threshold}")
        if self.max_bucket_size < 2:
            raise ValueError(f"NearDedupConfig.max_bucket_size must be >= 2, got "
                             f"{self.max_bucket_size}")

    def candidate_probability(self, similarity: float) -> float:
        return candidate_probability(similarity, self.bands, self.rows)


def minhash_permutations(config: NearDedupConfig):
    """The seeded permutation parameters, made once per worker and shared by its MinHashes."""
    from datasketch import MinHash  # pylint: disable=import-outside-toplevel
    return MinHash(config.num_perm, seed=config.seed, scheme=_MINHASH_SCHEME).permutations


def minhash_signature(hashes: np.ndarray, config: NearDedupConfig, permutations=None
                      ) -> np.ndarray:
    """datasketch MinHash of a shingle-hash set -> its hash values (num_perm uint32)."""
    from datasketch import MinHash  # pylint: disable=import-outside-toplevel
    if permutations is None:
        permutations = minhash_permutations(config)
    mh = MinHash(config.num_perm, seed=config.seed, permutations=permutations,
                 scheme=_MINHASH_SCHEME)
    data = _to_bytes(hashes)
    mh.update_batch(data[i:i + 8] for i in range(0, len(data), 8))
    return mh.hashvalues


def band_keys(signature: np.ndarray, bands: int, rows: int) -> List[tuple]:
    """One (band index, 16-byte digest of the band's rows) key per band. The digest is over
    little-endian uint64 values, so keys agree across platforms."""
    values = np.asarray(signature).astype("<u8")
    return [(band, hashlib.blake2b(values[band * rows:(band + 1) * rows].tobytes(),
                                   digest_size=16).digest())
            for band in range(bands)]


# --- Shared pieces ------------------------------------------------------------------------------

def _dead(record, reason: str, detail: str) -> beam.pvalue.TaggedOutput:
    count(STAGE, reason)
    rid = record.get("id", "")
    return beam.pvalue.TaggedOutput(DROPPED, rec.DeadLetter(
        id=rid if isinstance(rid, str) else str(rid), stage=STAGE, reason=reason,
        payload=rec.record_payload(record), detail=detail))


class _CheckText(beam.DoFn):
    def process(self, record):
        text = record.get("text")
        if isinstance(text, str):
            yield record
        else:
            yield _dead(record, "missing_text",
                        f"field 'text' is {type(text).__name__}, not a string")


def _split_missing_text(records, label: str):
    checked = records | label >> beam.ParDo(_CheckText()).with_outputs(DROPPED, main="ok")
    return checked.ok, checked[DROPPED]


class DedupResult(NamedTuple):
    kept: beam.PCollection
    dropped: beam.PCollection  # DeadLetter(stage="dedup")


# --- Exact dedup --------------------------------------------------------------------------------

def exact_key(text: str) -> bytes:
    return hashlib.sha256(normalize_for_dedup(text).encode("utf-8")).digest()


def _survivor_order(record):
    # Ids are unique by contract (ReadRecords dead-letters repeats); if a caller breaks that,
    # the payload still orders the records, so the survivor does not depend on arrival order.
    return record["id"], rec.record_payload(record)


class _KeepSmallestId(beam.DoFn):
    def process(self, element):
        _, group = element
        # Two passes over the grouped values instead of a list: one text repeated a million
        # times is a million-record group. Beam's grouped values may be iterated again and
        # give the same sequence; the survivor is remembered by position, not identity (a
        # runner may decode fresh objects on the second pass).
        best, best_index = None, -1
        for index, record in enumerate(group):
            if best is None or record["id"] < best["id"] or (
                    record["id"] == best["id"] and _survivor_order(record) < _survivor_order(best)):
                best, best_index = record, index
        for index, record in enumerate(group):
            if index == best_index:
                yield record
            else:
                yield _dead(record, "exact_duplicate",
                            f"exact duplicate of id {best['id']!r} (same text after "
                            f"normalisation: NFKC, case, whitespace, edge punctuation)")


class ExactDedup(beam.PTransform):
    """Records -> DedupResult: one record per normalised text (the smallest id) is kept."""

    def expand(self, records):
        ok, missing = _split_missing_text(records, "CheckText")
        result = (ok
                  | "KeyByTextHash" >> beam.Map(lambda r: (exact_key(r["text"]), r))
                  | "GroupByText" >> beam.GroupByKey()
                  | "KeepSmallestId" >> beam.ParDo(_KeepSmallestId()).with_outputs(
                      DROPPED, main="kept"))
        dropped = (missing, result[DROPPED]) | "Dropped" >> beam.Flatten()
        return DedupResult(result.kept, dropped)


# --- Near dedup ---------------------------------------------------------------------------------

class _Bands(beam.DoFn):
    """record -> ((band, band digest), id) per band. A text without words has no shingles
    and no buckets: it is never a near duplicate (exact dedup has seen it)."""

    def __init__(self, config: NearDedupConfig):
        self._config = config

    def setup(self):
        self._permutations = minhash_permutations(self._config)

    def process(self, record):
        hashes = shingle_hashes(record["text"], self._config.ngram)
        if len(hashes) == 0:
            return
        signature = minhash_signature(hashes, self._config, self._permutations)
        for key in band_keys(signature, self._config.bands, self._config.rows):
            yield key, record["id"]


def bucket_pairs(ids: Iterable[str], max_bucket_size: int):
    """Candidate pairs (a, b), a < b, of one bucket, and the number of pairs left out by the cap.

    Takes the ids twice (a Beam grouped iterable is re-iterable) so a huge bucket is never held
    whole: all pairs among the max_bucket_size smallest ids, then star pairs from the smallest
    id to each other id.
    """
    smallest = heapq.nsmallest(max_bucket_size, ids)
    head = sorted(set(smallest))
    pairs = [(head[i], head[j]) for i in range(len(head)) for j in range(i + 1, len(head))]
    if len(smallest) < max_bucket_size:  # the whole bucket fitted
        return pairs, 0
    in_head, rest = set(head), 0
    for other in ids:
        if other not in in_head:
            in_head.add(other)  # an id seen twice (a repeated id upstream) pairs once
            pairs.append((head[0], other))
            rest += 1
    n = len(head) + rest
    return pairs, n * (n - 1) // 2 - len(pairs)


class _BucketPairs(beam.DoFn):
    def __init__(self, max_bucket_size: int):
        self._max = max_bucket_size

    def process(self, element):
        _, ids = element
        pairs, skipped = bucket_pairs(ids, self._max)
        if skipped:
            count(STAGE, "lsh_bucket_capped")
            count(STAGE, "lsh_pairs_skipped", skipped)
        yield from pairs


class _ShipShingles(beam.DoFn):
    """(a, {pairs: [b...], text: [text]}) -> (b, (a, a's shingle hashes)) per pair."""

    def __init__(self, ngram: int):
        self._ngram = ngram

    def process(self, element):
        a, joined = element
        partners, texts = list(joined["pairs"]), list(joined["text"])
        if not partners or not texts:
            return
        # min(): deterministic if a caller broke the unique-id contract.
        data = _to_bytes(shingle_hashes(min(texts), self._ngram))
        for b in partners:
            yield b, (a, data)


class _VerifyAndDecide(beam.DoFn):
    """(b, {record: [record], cand: [(a, hashes of a)...]}) -> record kept, or dropped when some
    candidate a (a < b) has Jaccard >= threshold with it."""

    def __init__(self, config: NearDedupConfig):
        self._config = config

    def process(self, element):
        _, joined = element
        candidates = sorted(joined["cand"])  # by id: the detail names the smallest match
        for record in joined["record"]:
            if not candidates:
                yield record
                continue
            count(STAGE, "lsh_candidate_pairs", len(candidates))
            mine = shingle_hashes(record["text"], self._config.ngram)
            matches = [(a, s) for a, s in ((a, jaccard(_from_bytes(data), mine))
                                           for a, data in candidates)
                       if s >= self._config.threshold]
            if not matches:
                yield record
                continue
            count(STAGE, "lsh_verified_pairs", len(matches))
            kept_id, similarity = matches[0]
            others = f"; {len(matches) - 1} more of smaller id" if len(matches) > 1 else ""
            yield _dead(record, "near_duplicate",
                        f"near duplicate of id {kept_id!r} (Jaccard {similarity:.3f} of word "
                        f"{self._config.ngram}-gram shingles, threshold "
                        f"{self._config.threshold}{others})")


class NearDedup(beam.PTransform):
    """Records -> DedupResult: MinHash LSH candidates, verified by true Jaccard; a record with
    a verified near duplicate of smaller id is dropped (see the module docstring)."""

    def __init__(self, config: Optional[NearDedupConfig] = None):
        super().__init__()
        if config is not None and not isinstance(config, NearDedupConfig):
            raise TypeError(f"NearDedup expects a NearDedupConfig, got {type(config).__name__}")
        self._config = config or NearDedupConfig()

    def expand(self, records):
        config = self._config
        ok, missing = _split_missing_text(records, "CheckText")
        by_id = ok | "KeyById" >> beam.Map(lambda r: (r["id"], r))
        pairs = (ok
                 | "Bands" >> beam.ParDo(_Bands(config))
                 | "GroupBuckets" >> beam.GroupByKey()
                 | "CandidatePairs" >> beam.ParDo(_BucketPairs(config.max_bucket_size))
                 | "DistinctPairs" >> beam.Distinct())
        # Only (id, text) travels to the first join: pass-through fields stay put until the
        # second, where the record itself is needed.
        texts = by_id | "IdText" >> beam.Map(lambda kv: (kv[0], kv[1]["text"]))
        shipped = ({"pairs": pairs, "text": texts}
                   | "JoinSmallerId" >> beam.CoGroupByKey()
                   | "ShipShingles" >> beam.ParDo(_ShipShingles(config.ngram)))
        decided = ({"record": by_id, "cand": shipped}
                   | "JoinLargerId" >> beam.CoGroupByKey()
                   | "VerifyAndDecide" >> beam.ParDo(_VerifyAndDecide(config)).with_outputs(
                       DROPPED, main="kept"))
        dropped = (missing, decided[DROPPED]) | "Dropped" >> beam.Flatten()
        return DedupResult(decided.kept, dropped)


class Deduplicate(beam.PTransform):
    """ExactDedup, then NearDedup on what it kept (near=None: exact only). Returns
    DedupResult(kept, dropped) with both stages' DeadLetters in `dropped`."""

    def __init__(self, near: Optional[NearDedupConfig] = NearDedupConfig()):
        super().__init__()
        if near is not None and not isinstance(near, NearDedupConfig):
            raise TypeError(f"Deduplicate: near must be a NearDedupConfig or None, got "
                            f"{type(near).__name__}")
        self._near = near

    def expand(self, records):
        exact = records | "Exact" >> ExactDedup()
        if self._near is None:
            return exact
        near = exact.kept | "Near" >> NearDedup(self._near)
        dropped = (exact.dropped, near.dropped) | "Dropped" >> beam.Flatten()
        return DedupResult(near.kept, dropped)
