"""`Refine`: the GDR transform. Records in, refined records and dead letters out.

    refined, dead = records | gdr_beam.Refine(task="pii")

Stages, each turning its failures into dead letters (stage, reason, payload) rather than
errors, so every input ends as exactly one refined record or one dead letter:
  read      normalise the input (dict or tf.train.Example) into {id, text, pass-through}
  segment   a text longer than `segment_tokens` (default 64: a small model rewrites a few
            sentences faithfully far more often than a page; never more than a rewrite budget
            within max_new_tokens allows, nor the context) is split at natural boundaries
            into segments (segmentation.py); each segment goes through prompt, generate and
            verify like any example, in the same batches, and its document is reassembled and
            verified again as a whole at the end (tasks/documents.py). Only a text over
            `max_example_chars` is a dead letter (`too_long`)
  prompt    build the task's chat prompt, count its tokens and give the example its own
            new-token budget (`RewriteBudget`: a rewrite is about as long as its input, so
            1.3x the text's tokens + 32, at most max_new_tokens)
  generate  RunInference over the JAX engine, batched by tokens; a batch that raises becomes
            one dead letter per example (`with_exception_handling`), never a failed job
  verify    the task reviews the rewrite; one that fails (empty, cut off by max_new_tokens,
            leaking a detected value, ...) goes back to prompt/generate with the failure as
            feedback, up to `max_retries` times, and is then repaired by the task's fallback
            (verdict `fallback`, with `fallback_reasons`: the verifier's reason code for each
            failed attempt); a `rejected` verdict becomes a dead letter with the reason
  assemble  the segments of a long document back into one output (its `segments` field says
            each segment's verdict); a segment that failed anywhere falls back alone, with
            one identity map for the whole document
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from typing import NamedTuple, Optional

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from gdr_beam.beam import records as rec
from gdr_beam.beam.handler import GenerationRequest, JaxModelHandler
from gdr_beam.beam.io import count
from gdr_beam.segmentation import split_text
from gdr_beam.tasks import get_task
from gdr_beam.tasks.documents import SegmentResult, assemble

DEAD = "dead_letter"
RETRY = "retry"
DOCUMENTS = "documents"
PARTS = "segment_parts"
# The key a segment record carries (a SegmentRef); its document waits for it in Assemble.
SEGMENT = "_segment"
# The most text tokens of one segment by default. Measured on held-out long documents with the
# embedded model (benchmarks/refine_quality.py pii_long_heldout): segments of <= 64 tokens (a
# few sentences) passed verification 9 times in 36 (15% of the text), segments of <= 172 (the
# longest whose budget 256 new tokens allow) 0 times in 14: a small model keeps a short
# passage faithful far more often. A larger model may take more: Refine(segment_tokens=...).
DEFAULT_SEGMENT_TOKENS = 64
# ...and never fewer than this because a small max_new_tokens cannot fit a longer rewrite (that
# segment is then cut off and falls back): tiny segments lose their context.
MIN_SEGMENT_TOKENS = 64
# The one hard cap on an example's length (characters); anything shorter is refined.
MAX_EXAMPLE_CHARS = 1_000_000
# Room kept in the context for a retry prompt's feedback on top of a segment's first prompt.
RETRY_PROMPT_TOKENS = 96
# The `fallback_reasons` of a fallback made without a model pass (Task.use_model False).
MODEL_SKIPPED = "model_skipped"


@dataclasses.dataclass(frozen=True)
class RewriteBudget:
    """How many new tokens an example may generate, from its own length.

    A rewrite is about as long as its input (a name for a name, a number for a number), so the
    budget is ceil(ratio * the text's tokens) + margin, never more than Refine's
    max_new_tokens. One global budget instead cut long inputs off (then repaired by the
    fallback) while short ones reserved KV-cache slots they never used.
    """
    ratio: float = 1.3
    margin: int = 32

    def __post_init__(self):
        if self.ratio <= 0 or self.margin < 0:
            raise ValueError(f"RewriteBudget needs ratio > 0 and margin >= 0, got {self}")

    def tokens(self, text_tokens: int, max_new_tokens: int) -> int:
        """The budget of a text of text_tokens tokens, capped at max_new_tokens."""
        return max(1, min(math.ceil(self.ratio * text_tokens) + self.margin, max_new_tokens))

    def max_text_tokens(self, max_new_tokens: int) -> int:
        """The longest text (in tokens) whose budget max_new_tokens does not cap; 0 if none."""
        return max(0, math.floor((max_new_tokens - self.margin) / self.ratio))


class SegmentRef(NamedTuple):
    """Where a segment record's text sits in its document."""
    document: str  # the document's id
    index: int
    count: int
    start: int
    end: int


class _Part(NamedTuple):
    """A segment's result on its way to its document (see _dead and _Verify)."""
    document: str
    result: SegmentResult


def example_seed(run_seed: int, example_id: str) -> int:
    """A 64-bit per-example seed from the run seed and the id: independent of batching."""
    digest = hashlib.sha256(f"{run_seed}\x00{example_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _dead(record_or_id, stage: str, reason: str, detail: str = "", payload: bytes = b""
          ) -> beam.pvalue.TaggedOutput:
    if isinstance(record_or_id, dict) and SEGMENT in record_or_id:
        # A segment is no example of its own: its failure goes to its document, which falls
        # back on that segment alone (Refine.expand routes it from the dead letters).
        ref = record_or_id[SEGMENT]
        count("segment", f"{stage}_{reason}")
        return beam.pvalue.TaggedOutput(DEAD, _Part(ref.document, SegmentResult(
            ref.index, None, (reason,))))
    count(stage, reason)
    if isinstance(record_or_id, dict):
        rid, payload = record_or_id.get("id", ""), rec.record_payload(record_or_id)
    else:
        rid = record_or_id
    return beam.pvalue.TaggedOutput(DEAD, rec.DeadLetter(
        id=rid, stage=stage, reason=reason, payload=payload, detail=detail))


def _raw_payload(raw) -> bytes:
    if hasattr(raw, "SerializeToString"):
        return raw.SerializeToString(deterministic=True)
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    try:
        return json.dumps(raw, sort_keys=True, default=repr).encode("utf-8")
    except (TypeError, ValueError):
        return repr(raw).encode("utf-8", "backslashreplace")


class _Normalize(beam.DoFn):
    def __init__(self, text_field: str, id_field: str):
        self._text_field, self._id_field = text_field, id_field

    def process(self, raw):
        try:
            yield rec.normalize_record(raw, text_field=self._text_field, id_field=self._id_field)
        except rec.RecordError as e:
            yield _dead(rec.id_hint(raw, self._id_field), e.stage, e.reason, e.detail,
                        _raw_payload(raw))


@functools.lru_cache(maxsize=4)
def tokenizer_and_context(model_path: Optional[str]):
    """(tokenizer, context length) of a checkpoint, read once per process: the segment stage
    and every attempt's prompt stage need them, and each read of a GGUF's vocabulary costs
    seconds of CPU."""
    from gdr_beam.engine import load_tokenizer
    from gdr_beam.model import checkpoints
    path = model_path or checkpoints.default_model_path()
    return load_tokenizer(path), checkpoints.load_config(path).max_position_embeddings


class _Segment(beam.DoFn):
    """record -> the record itself, or, for a text too long to rewrite in one reply, its
    segment records (to the main output, for prompt/generate/verify) and (id, record) to
    DOCUMENTS, where Assemble waits for its segments. Loads only the tokenizer and config."""

    def __init__(self, task, model_path: Optional[str], max_new_tokens: int,
                 budget: Optional[RewriteBudget], max_example_chars: int,
                 segment_tokens: Optional[int]):
        self._task, self._model_path = task, model_path
        self._max_new_tokens, self._budget = max_new_tokens, budget
        self._max_example_chars, self._segment_tokens = max_example_chars, segment_tokens

    def setup(self):
        self._tokenizer, context = tokenizer_and_context(self._model_path)
        self._task_obj = get_task(self._task)
        self._limit = segment_limit(
            len(self._tokenizer.encode(self._tokenizer.apply_chat_template(
                self._task_obj.messages("")))), context, self._max_new_tokens, self._budget,
            self._segment_tokens)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text))

    def process(self, record):
        text = record["text"]
        if len(text) > self._max_example_chars:
            yield _dead(record, "prompt", "too_long",
                        f"{len(text)} characters, more than max_example_chars="
                        f"{self._max_example_chars}")
            return
        try:
            if self.count_tokens(text) <= self._limit:
                yield record
                return
            ranges = split_text(text, self.count_tokens, self._limit,
                                self._task_obj.text_kind)
        except Exception as e:  # a tokenizer or splitter fault must not take the job down
            yield _dead(record, "prompt", "segment_error", f"{type(e).__name__}: {e}")
            return
        count("segment", "documents")
        count("segment", "segments", len(ranges))
        yield beam.pvalue.TaggedOutput(DOCUMENTS, (record["id"], (record, tuple(ranges))))
        for i, (a, b) in enumerate(ranges):
            yield {"id": f"{record['id']}#{i + 1}/{len(ranges)}", "text": text[a:b],
                   SEGMENT: SegmentRef(record["id"], i, len(ranges), a, b)}


def segment_limit(prompt_tokens: int, context: int, max_new_tokens: int,
                  budget: Optional[RewriteBudget], segment_tokens: Optional[int] = None) -> int:
    """The most tokens of text one prompt (segment) may hold: `segment_tokens` (default
    DEFAULT_SEGMENT_TOKENS), but no more than leaves its rewrite budget uncapped by
    max_new_tokens (never below MIN_SEGMENT_TOKENS), and its prompt, a retry's feedback and
    max_new_tokens within the context."""
    by_context = context - prompt_tokens - RETRY_PROMPT_TOKENS - max_new_tokens
    limit = min(segment_tokens or DEFAULT_SEGMENT_TOKENS, by_context)
    if budget is not None:
        limit = min(limit, max(MIN_SEGMENT_TOKENS, budget.max_text_tokens(max_new_tokens)))
    if limit < 1:
        raise ValueError(f"no text fits: the task's prompt ({prompt_tokens} tokens) and "
                         f"max_new_tokens={max_new_tokens} fill the context of {context}")
    return limit


def retry_seed(run_seed: int, example_id: str, attempt: int) -> int:
    """The seed of a retry: a new draw for the same example, still independent of batching."""
    return example_seed(run_seed, example_id if attempt == 0 else f"{example_id}\x00{attempt}")


class _BuildPrompt(beam.DoFn):
    """record, or (record, feedback, reasons) on a retry -> ((record, reasons), request).

    `reasons` (a tuple of the verifier's reason codes of the attempts that failed so far) rides
    in the key next to the record, so the last attempt's fallback can say why it was needed
    without a field the record's payload would carry. Loads only the tokenizer and config."""

    def __init__(self, task, model_path: Optional[str], max_new_tokens: int, seed: int,
                 attempt: int = 0, budget: Optional[RewriteBudget] = None):
        self._task, self._model_path = task, model_path
        self._max_new_tokens, self._seed, self._attempt = max_new_tokens, seed, attempt
        self._budget = budget

    def setup(self):
        self._tokenizer, self._context = tokenizer_and_context(self._model_path)
        self._task_obj = get_task(self._task)

    def process(self, element):
        record, feedback, reasons = element if self._attempt else (element, None, ())
        try:
            prompt = self._tokenizer.apply_chat_template(
                self._task_obj.messages(record["text"], feedback=feedback))
            num_tokens = len(self._tokenizer.encode(prompt))
            if self._budget is None:
                budget, why = self._max_new_tokens, f"max_new_tokens={self._max_new_tokens}"
            else:
                text_tokens = len(self._tokenizer.encode(record["text"]))
                budget = self._budget.tokens(text_tokens, self._max_new_tokens)
                why = (f"its rewrite budget of {budget} new tokens (for a text of "
                       f"{text_tokens} tokens; max_new_tokens={self._max_new_tokens})")
        except Exception as e:  # a task's prompt code must not take the job down
            yield _dead(record, "prompt", "prompt_error", f"{type(e).__name__}: {e}")
            return
        if num_tokens + budget > self._context:
            yield _dead(record, "prompt", "too_long",
                        f"prompt has {num_tokens} tokens; with {why} it exceeds the model "
                        f"context of {self._context}")
            return
        yield (record, reasons), GenerationRequest(record["id"], prompt, num_tokens,
                                                   retry_seed(self._seed, record["id"],
                                                              self._attempt), budget)


class _Verify(beam.DoFn):
    """(record, PredictionResult) -> output-contract record, a retry (record, feedback), or a
    dead letter. The last attempt repairs what fails with the task's fallback."""

    def __init__(self, task, seed: int, final: bool):
        self._task, self._seed, self._final = task, seed, final

    def setup(self):
        self._task_obj = get_task(self._task)

    def process(self, element):
        (record, reasons), result = element
        generation = result.inference
        name = self._task_obj.name
        segment = record.get(SEGMENT)
        try:
            review = self._task_obj.review_reply(record["text"], generation.text,
                                                 generation.hit_max_tokens)
            check = review.accepted
            if check is None:
                count("verify", f"{name}/failed/{review.reason}")
                reasons = reasons + (review.reason,)
                if not self._final:
                    count("verify", f"{name}/retry")
                    yield beam.pvalue.TaggedOutput(RETRY, (record, review.detail, reasons))
                    return
                if segment is None:
                    check = self._task_obj.fallback(record["id"], record["text"], self._seed,
                                                    review.reason)
            if segment is not None:  # its document falls back on it, if need be (Assemble)
                count("segment", "accepted" if check is not None else "failed")
                yield beam.pvalue.TaggedOutput(PARTS, _Part(segment.document, SegmentResult(
                    segment.index, check, reasons, result.model_id or "")))
                return
        except Exception as e:  # a verifier bug must not take the job down
            yield _dead(record, "verify", "verify_error", f"{type(e).__name__}: {e}")
            return
        count("verify", f"{name}/{check.verdict}")
        if check.verdict == "rejected":
            yield _dead(record, "verify", check.reason or "rejected",
                        f"task {name} rejected the example after the model's rewrite failed "
                        f"({review.reason}: {review.detail})")
            return
        yield _output(record, check, name, result.model_id or "", reasons)


def _output(record: dict, check, task_name: str, model_id: str, reasons: tuple,
            segments: tuple = ()) -> dict:
    """The output contract's record for an emitted verification. `reasons`: why the model's
    attempts failed, kept on a fallback only; `segments`: a long document's segments."""
    out = {k: v for k, v in record.items() if k not in ("id", "text")}
    out.update(id=record["id"], text=check.text, original_sha256=rec.text_sha256(record["text"]),
               task=task_name, model=model_id, verdict=check.verdict,
               changes=json.dumps(list(check.changes), sort_keys=True, ensure_ascii=False),
               # Reason codes only, never the detail: a detail may quote the very value the
               # refinement removed.
               fallback_reasons=json.dumps(list(reasons) if check.verdict == "fallback" else [],
                                           ensure_ascii=False),
               segments=json.dumps(list(segments), sort_keys=True))
    return out


class _Assemble(beam.DoFn):
    """(id, {"document": [(record, ranges)], "parts": [SegmentResult]}) -> the document's one
    output record, or a dead letter (tasks/documents.py says how)."""

    def __init__(self, task, seed: int):
        self._task, self._seed = task, seed

    def setup(self):
        self._task_obj = get_task(self._task)

    def process(self, element):
        _, grouped = element
        documents = list(grouped["document"])
        if not documents:  # parts without their document: cannot happen, never silent
            raise RuntimeError(f"segments of an unknown document {element[0]!r}")
        record, ranges = documents[0]
        name = self._task_obj.name
        try:
            done = assemble(self._task_obj, record["id"], record["text"], ranges,
                            sorted(grouped["parts"], key=lambda r: r.index), self._seed)
        except Exception as e:  # a verifier bug must not take the job down
            yield _dead(record, "verify", "verify_error", f"{type(e).__name__}: {e}")
            return
        check = done.verification
        count("verify", f"{name}/{check.verdict}")
        if check.verdict == "rejected":
            yield _dead(record, "verify", check.reason or "rejected",
                        f"task {name} rejected the document ({len(ranges)} segments)")
            return
        yield _output(record, check, name, done.model, done.reasons, done.segments)


class _Direct(beam.DoFn):
    """record -> output-contract record or dead letter, refined without the model: the task's
    `use_model` is False (see Task.direct). `model` stays empty: no model touched it."""

    def __init__(self, task, seed: int):
        self._task, self._seed = task, seed

    def setup(self):
        self._task_obj = get_task(self._task)

    def process(self, record):
        name = self._task_obj.name
        try:
            check = self._task_obj.direct(record["id"], record["text"], self._seed)
        except Exception as e:  # a verifier bug must not take the job down
            yield _dead(record, "verify", "verify_error", f"{type(e).__name__}: {e}")
            return
        count("verify", f"{name}/model_skipped")
        count("verify", f"{name}/{check.verdict}")
        if check.verdict == "rejected":
            yield _dead(record, "verify", check.reason or "rejected",
                        f"task {name} rejected the example (model pass skipped)")
            return
        # No model attempt failed: the task skipped the model, and its fallback says so.
        yield _output(record, check, name, "", (MODEL_SKIPPED,))


def _failed_batch_to_dead(element):
    """RunInference's dead letter: (batch of (record, request), error info) -> DeadLetters."""
    batch, error = element
    if isinstance(error, tuple) and len(error) >= 2:
        detail = f"{getattr(error[0], '__name__', error[0])}: {error[1]}"
    else:
        detail = repr(error)
    for (record, _), _ in batch:
        yield _dead(record, "generate", "inference_error", detail[:2000]).value


class RefineResult(NamedTuple):
    refined: beam.PCollection
    dead_letter: beam.PCollection


class Refine(beam.PTransform):
    """Refines records with a task and a model; returns (refined, dead_letter).

    max_retries: how often a rewrite that fails verification goes back to the model (with the
      failure in a stricter prompt, a new per-example seed and `retry_temperature`, since a
      greedy retry of a near-identical prompt tends to repeat itself) before the task's
      fallback repairs it. Each attempt is its own RunInference stage (Beam graphs have no
      loops); they share the one model per worker process (see handler.load_model).
    max_new_tokens: the upper bound of every example's budget.
    budget: each example's new-token budget from its own length (`RewriteBudget`), capped at
      max_new_tokens; None gives every example max_new_tokens.
    max_example_chars: a longer text is a dead letter (`too_long`); anything shorter is
      refined, split into segments when it is too long for one reply.
    segment_tokens: the most text tokens of one segment (default DEFAULT_SEGMENT_TOKENS, never
      more than the longest text whose budget max_new_tokens does not cap; `segment_limit`).
    """

    def __init__(self, task="pii", model: Optional[str] = None, *,
                 model_handler: Optional[JaxModelHandler] = None, text_field: str = "text",
                 id_field: str = "id", max_new_tokens: int = 256, temperature: float = 0.0,
                 seed: int = 0, max_batch_tokens: int = 8192, dtype=None,
                 max_retries: int = 1, retry_temperature: float = 0.7,
                 budget: Optional[RewriteBudget] = RewriteBudget(),
                 max_example_chars: int = MAX_EXAMPLE_CHARS,
                 segment_tokens: Optional[int] = None):
        super().__init__()
        get_task(task)  # unknown task names fail at construction, not on the workers
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if max_example_chars < 1 or (segment_tokens is not None and segment_tokens < 1):
            raise ValueError("max_example_chars and segment_tokens must be >= 1")
        self._max_example_chars, self._segment_tokens = max_example_chars, segment_tokens
        self._task, self._model = task, model
        self._text_field, self._id_field = text_field, id_field
        self._max_new_tokens, self._seed = max_new_tokens, seed
        self._max_retries, self._retry_temperature = max_retries, retry_temperature
        self._budget = budget
        self._handler = model_handler or JaxModelHandler(
            model, dtype=dtype, max_new_tokens=max_new_tokens, temperature=temperature,
            max_batch_tokens=max_batch_tokens)

    def expand(self, pcoll):
        normalized = pcoll | "Normalize" >> beam.ParDo(
            _Normalize(self._text_field, self._id_field)).with_outputs(DEAD, main="records")
        dead = [normalized[DEAD]]
        if not get_task(self._task).use_model:  # no prompt, no model load, no generation
            direct = normalized.records | "Direct" >> beam.ParDo(
                _Direct(self._task, self._seed)).with_outputs(DEAD, main="refined")
            return RefineResult(direct.refined,
                                dead + [direct[DEAD]] | "DeadLetters" >> beam.Flatten())
        refined = []
        segmented = normalized.records | "Segment" >> beam.ParDo(_Segment(
            self._task, self._model, self._max_new_tokens, self._budget,
            self._max_example_chars, self._segment_tokens)).with_outputs(
                DEAD, DOCUMENTS, main="records")
        dead.append(segmented[DEAD])
        parts = []
        pending = segmented.records
        for attempt in range(self._max_retries + 1):
            final = attempt == self._max_retries
            suffix = f"_retry{attempt}" if attempt else ""
            prompted = pending | f"Prompt{suffix}" >> beam.ParDo(_BuildPrompt(
                self._task, self._model, self._max_new_tokens, self._seed, attempt,
                self._budget)
            ).with_outputs(DEAD, main="requests")
            args = {"temperature": self._retry_temperature} if attempt else None
            generated, failed = (prompted.requests | f"Generate{suffix}" >> RunInference(
                KeyedModelHandler(self._handler), inference_args=args
            ).with_exception_handling())
            verified = generated | f"Verify{suffix}" >> beam.ParDo(
                _Verify(self._task, self._seed, final)).with_outputs(DEAD, RETRY, PARTS,
                                                                     main="refined")
            dead += [prompted[DEAD], verified[DEAD],
                     failed.failed_inferences
                     | f"FailedBatches{suffix}" >> beam.FlatMap(_failed_batch_to_dead)]
            refined.append(verified.refined)
            parts.append(verified[PARTS])
            pending = verified[RETRY]
        # A segment's failure in any stage came out as a _Part among the dead letters.
        dead_letters, failed_parts = (
            dead | "DeadLetters" >> beam.Flatten()
            | "SplitSegmentFailures" >> beam.Partition(
                lambda x, n: int(isinstance(x, _Part)), 2))
        documents = ({"document": segmented[DOCUMENTS],
                      "parts": (parts + [failed_parts]) | "AllParts" >> beam.Flatten()
                      | "ByDocument" >> beam.Map(tuple)}
                     | "GroupSegments" >> beam.CoGroupByKey()
                     | "Assemble" >> beam.ParDo(_Assemble(self._task, self._seed)
                                                ).with_outputs(DEAD, main="refined"))
        return RefineResult(
            (refined + [documents.refined]) | "Refined" >> beam.Flatten(),
            (dead_letters, documents[DEAD]) | "AllDeadLetters" >> beam.Flatten())
