"""`QualityFilter`: drops refined records that are not worth keeping, each with a reason.

    kept, dropped = refined | QualityFilter(FilterConfig(max_chars=50_000))

`dropped` holds one `DeadLetter(stage="filter", reason=...)` per dropped record, so nothing is
lost silently; every drop also increments the Beam counter `gdr/filter/<reason>`. Reasons:

  rejected        the refinement task itself said no (verdict `rejected`)
  missing_text    `text` is absent or not a string (a contract violation upstream)
  too_short       fewer than `min_chars` non-space characters or `min_words` words
  too_long        more than `max_chars` characters
  bad_characters  too many control, U+FFFD replacement or private-use characters
  repetition      a looping or boilerplate text (duplicate n-grams outside quoted "> " lines,
                  or a unit repeated in a row)

The rules are a small subset of published web-text heuristics, loosened because a record here
may legitimately be a one-line message, not a web page:
  * Gopher / MassiveText quality filter (Rae et al. 2021, "Scaling Language Models", App. A.1.1
    and Table A1): document length bounds, and the repetition rules "fraction of duplicate
    word n-grams" (there on characters, n=5..10, 0.15..0.10) and duplicate lines. Gopher's
    bounds are 50..100,000 words for web pages; ours default to 1 word .. 100,000 characters.
  * C4 (Raffel et al. 2020, Sec. 2.2, and TFDS's c4 builder): minimum length per page; its
    line-level cleaning (terminal punctuation, "lorem ipsum", curly braces, bad-word lists) is
    web-page specific and deliberately not applied to refined records.
  * Replacement characters and control characters: a sign of a decoding error upstream (CCNet
    and most web pipelines drop or repair such text); private-use code points have no meaning
    outside the system that wrote them.
The loop detector (a word unit or a short character unit repeated many times in a row) is ours:
it targets the failure a generative rewrite adds, a model stuck repeating itself.

`filter_reason(record, config)` is the whole decision as a pure function; the DoFn only routes.

The same checks are cheap enough to run on the inputs too, before the model sees them:
`QualityFilter(INPUT_CHECKS, what="input")` drops a text of control characters or a loop
before it takes a generation slot (in a fuzz of 3,000 malformed records ~300 such texts went
through the model only to be dropped afterwards); the job runs it ahead of Refine.
"""

from __future__ import annotations

import dataclasses
import re
from typing import NamedTuple, Optional, Tuple

import apache_beam as beam
import numpy as np

from gdr_beam.beam import records as rec
from gdr_beam.beam.io import count

STAGE = "filter"
DROPPED = "dropped"
REASONS = ("rejected", "missing_text", "too_short", "too_long", "bad_characters", "repetition")

# Control characters other than \t \n \r (C0, DEL, C1), UTF-16 surrogates, U+FFFD, and the three
# private-use areas. Spelled out rather than via unicodedata.category, so the decision does not
# change with the Python version's Unicode database.
_BAD_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffd\ue000-\uf8ff"
    "\U000f0000-\U000ffffd\U00100000-\U0010fffd]")
_WORD = re.compile(r"\w+")
_QUOTED_LINE = re.compile(r"(?m)^[ \t]*>.*$")
_DETAIL_SNIPPET = 60


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Thresholds of the quality filter. A record is dropped at the first rule it breaks, in
    the order of `REASONS`.

    min_chars / min_words: at least this many non-whitespace characters / whitespace-separated
        words. The defaults only drop empty output; raise them for corpora of documents.
    max_chars: at most this many characters (code points), a bound on what a later stage or a
        trainer has to hold; Gopher's upper bound is 100,000 words.
    max_bad_char_ratio: at most this share of the characters may be control (other than \\t \\n
        \\r), surrogate, U+FFFD or private-use characters. 0.01 lets a stray one through in a
        long text; a short text with one is dropped.
    ngram / max_duplicate_ngram_fraction: of the text's word n-grams (words are `\\w+` runs,
        case-folded; lines quoted with ">" left out: a thread's quoted history repeats earlier
        messages by convention), at most this share may repeat an n-gram seen earlier in the
        text. Natural prose of 100,000 characters measures 0.12-0.17 for n=3 (GPL-3, vim's docs); a
        concatenation of near-identical license texts measures 0.47.
    repetition_min_words: the n-gram rule applies only to texts of at least this many words:
        on a handful of words one repeat is a large fraction and means nothing.
    loop_min_repeats / loop_min_words / loop_max_period: a unit of 1..loop_max_period words
        repeated at least loop_min_repeats times in a row, spanning at least loop_min_words
        words, is a loop ("the the the ...", the same sentence five times). This catches a loop
        at the end of a long text, where it is too small a share for the n-gram rule; loops of
        longer units are what the n-gram rule catches.
    max_char_run: a unit of 1..8 characters, not only whitespace, repeated in a row over more
        than this many characters is a loop too ("hahahaha...", "!!!!...", a script without
        spaces). 100 leaves room for the usual ruler lines ("-----", "=====") of plain text.
    drop_rejected: drop records whose verdict is `rejected` (the task refused to vouch for
        them). Refine already dead-letters those; this guards inputs from elsewhere.
    """
    min_chars: int = 1
    min_words: int = 1
    max_chars: int = 100_000
    max_bad_char_ratio: float = 0.01
    ngram: int = 3
    max_duplicate_ngram_fraction: float = 0.3
    repetition_min_words: int = 20
    loop_min_repeats: int = 4
    loop_min_words: int = 10
    loop_max_period: int = 256
    max_char_run: int = 100
    drop_rejected: bool = True

    def __post_init__(self):
        for name in ("min_chars", "min_words", "repetition_min_words", "loop_min_words"):
            if getattr(self, name) < 0:
                raise ValueError(f"FilterConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_chars", "ngram", "loop_max_period", "max_char_run"):
            if getattr(self, name) < 1:
                raise ValueError(f"FilterConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.loop_min_repeats < 2:
            raise ValueError(f"FilterConfig.loop_min_repeats must be >= 2 (a unit repeated "
                             f"once is not a loop), got {self.loop_min_repeats}")
        if self.min_chars > self.max_chars:
            raise ValueError(f"FilterConfig.min_chars ({self.min_chars}) exceeds max_chars "
                             f"({self.max_chars}): every record would be dropped")
        for name in ("max_bad_char_ratio", "max_duplicate_ngram_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"FilterConfig.{name} must be in [0, 1], "
                                 f"got {getattr(self, name)}")


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_SNIPPET else text[:_DETAIL_SNIPPET - 3] + "..."


def _longest_periodic_run(values: np.ndarray, period: int) -> Tuple[int, int]:
    """(start, length) of the longest span in which values[i] == values[i + period] holds for
    every i; the span values[start : start + length + period] is then one unit of `period`
    values repeated (length + period) / period times."""
    if len(values) <= period:
        return 0, 0
    equal = np.concatenate(([0], (values[:-period] == values[period:]).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(equal))  # alternating run starts and ends
    if len(edges) == 0:
        return 0, 0
    starts, ends = edges[0::2], edges[1::2]
    best = int(np.argmax(ends - starts))  # argmax: the first longest run, deterministic
    return int(starts[best]), int(ends[best] - starts[best])


def duplicate_ngram_fraction(words, n: int) -> float:
    """Share of the word n-grams that repeat an n-gram seen earlier (0 if there are none)."""
    grams = list(zip(*(words[i:] for i in range(n))))
    if not grams:
        return 0.0
    return (len(grams) - len(set(grams))) / len(grams)


def _word_loop(words, config: FilterConfig) -> Optional[str]:
    if len(words) < max(config.loop_min_words, config.loop_min_repeats):
        return None
    vocab = {}
    ids = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int64,
                      count=len(words))
    for period in range(1, min(config.loop_max_period, len(words) // 2) + 1):
        start, length = _longest_periodic_run(ids, period)
        repeats = (length + period) // period
        if repeats >= config.loop_min_repeats and repeats * period >= config.loop_min_words:
            unit = " ".join(words[start:start + period])
            return (f"a {period}-word unit repeated {repeats} times in a row: "
                    f"{_snippet(unit)!r}")
    return None


def _char_loop(text: str, config: FilterConfig) -> Optional[str]:
    if len(text) <= config.max_char_run:
        return None
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    for period in range(1, 9):
        start, length = _longest_periodic_run(codes, period)
        span = length + period
        unit = text[start:start + period]
        if span > config.max_char_run and unit.strip():
            return (f"the {period}-character unit {unit!r} repeated over {span} characters "
                    f"in a row")
    return None


def filter_reason(record, config: FilterConfig = FilterConfig()
                  ) -> Optional[Tuple[str, str]]:
    """None if the record is kept, else (reason, detail): reason one of `REASONS`, detail a
    human explanation naming the cause and the threshold."""
    if config.drop_rejected and record.get("verdict") == "rejected":
        return "rejected", "the refinement task rejected this record (verdict 'rejected')"
    text = record.get("text")
    if not isinstance(text, str):
        return "missing_text", f"field 'text' is {type(text).__name__}, not a string"
    nonspace = len("".join(text.split()))
    if nonspace < config.min_chars:
        return "too_short", (f"{nonspace} non-whitespace characters, fewer than min_chars="
                             f"{config.min_chars}")
    num_words = len(text.split())
    if num_words < config.min_words:
        return "too_short", f"{num_words} words, fewer than min_words={config.min_words}"
    if len(text) > config.max_chars:
        return "too_long", f"{len(text)} characters, more than max_chars={config.max_chars}"
    bad = _BAD_CHARS.findall(text)
    if bad and len(bad) / len(text) > config.max_bad_char_ratio:
        kinds = ", ".join(f"U+{ord(c):04X}" for c in sorted(set(bad))[:5])
        return "bad_characters", (
            f"{len(bad)} of {len(text)} characters ({len(bad) / len(text):.1%}) are control, "
            f"replacement or private-use characters ({kinds}); max_bad_char_ratio="
            f"{config.max_bad_char_ratio}")
    words = _WORD.findall(text.casefold())
    # Quoted history ("> ..." lines of an e-mail or forum thread) repeats earlier messages by
    # convention, not by looping: a 4-message thread that quotes in full measures 62% duplicate
    # 3-grams. The n-gram rule reads the unquoted lines only.
    # Nor is a thread whose messages are all quoted a loop: what is left of it is its
    # repeated headers ("On Monday, Paul wrote:"), so the whole text must repeat too.
    own = _WORD.findall(_QUOTED_LINE.sub("", text).casefold())
    if len(own) >= config.repetition_min_words:
        fraction = duplicate_ngram_fraction(own, config.ngram)
        if len(own) < len(words):
            fraction = min(fraction, duplicate_ngram_fraction(words, config.ngram))
        if fraction > config.max_duplicate_ngram_fraction:
            return "repetition", (f"{fraction:.0%} of the word {config.ngram}-grams repeat "
                                  f"earlier ones; max_duplicate_ngram_fraction="
                                  f"{config.max_duplicate_ngram_fraction}")
    loop = _word_loop(words, config) or _char_loop(text, config)
    if loop:
        return "repetition", "looping text: " + loop
    return None


# The checks run on input records before generation: every rule but `rejected` (an input has
# no verdict; a pass-through field of that name means nothing here).
INPUT_CHECKS = FilterConfig(drop_rejected=False)


class _Filter(beam.DoFn):
    def __init__(self, config: FilterConfig, what: str = ""):
        self._config, self._what = config, what

    def process(self, record):
        verdict = filter_reason(record, self._config)
        if verdict is None:
            yield record
            return
        reason, detail = verdict
        if self._what:
            detail = f"{self._what} text: {detail}"
        count(STAGE, reason)
        rid = record.get("id", "")
        yield beam.pvalue.TaggedOutput(DROPPED, rec.DeadLetter(
            id=rid if isinstance(rid, str) else str(rid), stage=STAGE, reason=reason,
            payload=rec.record_payload(record), detail=detail))


class FilterResult(NamedTuple):
    kept: beam.PCollection
    dropped: beam.PCollection  # DeadLetter(stage="filter")


class QualityFilter(beam.PTransform):
    """Records -> FilterResult(kept records, dropped DeadLetters). Records are not modified: a
    kept record leaves exactly as it came, pass-through fields included.

    what: a word the drop's detail starts with ("input": the check ran before generation).
    """

    def __init__(self, config: Optional[FilterConfig] = None, what: str = ""):
        super().__init__()
        if config is not None and not isinstance(config, FilterConfig):
            raise TypeError(f"QualityFilter expects a FilterConfig, got {type(config).__name__}")
        self._config = config or FilterConfig()
        self._what = what

    def expand(self, records):
        result = records | "Filter" >> beam.ParDo(_Filter(self._config, self._what)).with_outputs(
            DROPPED, main="kept")
        return FilterResult(result.kept, result[DROPPED])
