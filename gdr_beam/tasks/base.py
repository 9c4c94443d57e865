"""What a refinement task is, and the registry that names them (`--task=pii`).

A task is four things: a chat prompt for the model (`messages`), a detector of what must not
survive (`detect` -> Spans), a replacement of the same kind for a detected value
(`replacement`), and the checks a rewrite must pass (`check`). From them this base class
builds the rest, the same way for every task:

  review(original, rewrite)   the rewrite passes every check -> verdict `rewritten` (or
                              `unchanged` when only case/spacing/punctuation moved); else a
                              failure reason, and Refine retries the model (bounded)
  fallback(id, original, seed) the rewrite could not be trusted: every detected span is
                              replaced deterministically -> verdict `fallback`; a task may
                              instead return `rejected` (nothing safe to emit: dead letter)
  verify(...)                 review, then fallback on failure: one call for a last attempt

Verdicts:
  rewritten  the model's rewrite passed verification;
  unchanged  nothing needed changing and the text is emitted as it was;
  fallback   the rewrite failed and the deterministic repair produced the text;
  rejected   nothing safe can be emitted (the pipeline turns it into a dead letter).

Every emitted text carries `changes`: the replaced spans in original offsets, with category and
replacement, so a person can audit per example what changed.

A custom task subclasses Task and registers itself:

    @register_task("emails_only")
    class EmailsOnly(Task):
        def messages(self, text, feedback=None): ...
        def detect(self, text): return [Span(m.start(), m.end(), "email", m.group())
                                        for m in EMAIL.finditer(text)]
        def replacement(self, span, rng): return f"user{rng.randrange(1000)}@example.com"

(see examples/custom_task.py and its test).
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import functools
import hashlib
import random
import re
from typing import Callable, Mapping, Optional, Sequence

from gdr_beam.tasks.alignment import unexplained_edits

VERDICTS = ("rewritten", "unchanged", "fallback", "rejected")

_WORD = re.compile(r"\w+")
_PLACEHOLDER = re.compile(r"<[A-Z_]{3,}>|\[[A-Z_]{3,}\]|\{\{?[A-Z_]{3,}\}\}?|\*{3,}")
# A leading line that announces the rewrite instead of being part of it. Narrow on purpose (a
# cue word, a mention of the rewrite, a colon): a text that itself opens with "Here is the
# agenda:" must not lose its first line.
_PREAMBLE = re.compile(r"^\s*(?:sure|certainly|okay|of course|here)\b[^\n]{0,80}?"
                       r"\b(?:rewrit\w*|anonymi\w*|version|text|code)\b[^\n]{0,40}:[ \t]*\n",
                       re.I)


@dataclasses.dataclass(frozen=True)
class Span:
    """A detected value: text[start:end] == value."""
    start: int
    end: int
    category: str
    value: str

    def overlaps(self, start: int, end: int) -> bool:
        return self.start < end and start < self.end


@dataclasses.dataclass(frozen=True)
class Verification:
    verdict: str
    text: str
    # Replaced spans in original offsets: {"start", "end", "category", "replacement"}.
    changes: tuple = ()
    reason: str = ""  # why the model's rewrite was not accepted (empty when it was)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; expected one of {VERDICTS}")


@dataclasses.dataclass(frozen=True)
class Review:
    """What `Task.review` found: an accepted Verification, or the reason for a retry."""
    accepted: Optional[Verification]
    reason: str = ""  # a short code, e.g. leaked_value
    detail: str = ""  # for the retry prompt and the dead letter: what exactly failed


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def outside_spans(text: str, spans: Sequence[Span]) -> str:
    pieces, pos = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        pieces.append(text[pos:s.start])
        pos = max(pos, s.end)
    pieces.append(text[pos:])
    return " ".join(pieces)


def words_kept(original: str, spans: Sequence[Span], rewritten: str) -> float:
    """Share of the original's words outside the detected spans that the rewrite keeps: the
    utility check (a rewrite that drops the content is no refinement)."""
    kept = words(outside_spans(original, spans))
    if not kept:
        return 1.0
    present = set(words(rewritten))
    return sum(w in present for w in kept) / len(kept)


# A word-level diff's change carries the punctuation beside a value ("Chen," -> "Torres,");
# strip these to compare the values themselves.
CHANGE_EDGE = " \t\n.,;:!?\"'()[]"


def diff_changes(original: str, rewritten: str, spans: Sequence[Span] = ()) -> tuple:
    """A rewrite's replaced spans in original offsets (word-level diff). A change over a
    detected span takes that span's category; others are `model` (the model's own edit)."""
    tokens_a = [(m.start(), m.end()) for m in re.finditer(r"\S+", original)]
    words_a = [original[a:b] for a, b in tokens_a]
    words_b = rewritten.split()
    changes = []
    matcher = difflib.SequenceMatcher(a=words_a, b=words_b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        start = tokens_a[i1][0] if i1 < len(tokens_a) else len(original)
        end = tokens_a[i2 - 1][1] if i2 > i1 else start
        categories = sorted({s.category for s in spans if s.overlaps(start, end)})
        changes.append({"start": start, "end": end,
                        "category": "+".join(categories) or "model",
                        "replacement": " ".join(words_b[j1:j2])})
    return tuple(changes)


def name_word_pairs(old: str, new: str) -> list[tuple[str, str]]:
    """The word-for-word correspondence of a person's name and its fake: every word when the
    two have as many ("Laura Chen" -> "Maya Torres"), else first and last ("Yoshka J. Roefs"
    -> "Alexis Smith": Yoshka -> Alexis, Roefs -> Smith), so one person keeps one fake
    whichever form of the name a replacement was chosen for."""
    o, n = old.split(), new.split()
    if len(o) == len(n):
        return list(zip(o, n))
    if len(o) >= 2 and len(n) >= 2:
        return [(o[0], n[0]), (o[-1], n[-1])]
    return []


def seeded_rng(seed: int, example_id: str, value: str) -> random.Random:
    """The fallback's randomness: a function of (run seed, example, value) only, so a value gets
    the same replacement wherever it occurs in the example and reruns are identical."""
    digest = hashlib.sha256(f"{seed}\x00{example_id}\x00{value}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def replace_spans(text: str, spans: Sequence[Span], replace: Callable[[Span], str]
                  ) -> tuple[str, tuple]:
    """text with every span replaced by replace(span) -> (new text, changes)."""
    pieces, changes, pos = [], [], 0
    for s in sorted(spans, key=lambda s: s.start):
        if s.start < pos:
            continue  # overlapping detections: the earlier one already covers it
        new = replace(s)
        pieces += [text[pos:s.start], new]
        changes.append({"start": s.start, "end": s.end, "category": s.category,
                        "replacement": new})
        pos = s.end
    pieces.append(text[pos:])
    return "".join(pieces), tuple(changes)


def distinct_replacement(span: Span, rng: random.Random,
                         replace: Callable[[Span, random.Random], str], tries: int = 8) -> str:
    """replace(span, rng), drawn again while it equals the value: a fake that happens to be
    the real value (a common name, a short number) would leak it."""
    new = replace(span, rng)
    for _ in range(tries - 1):
        if new != span.value:
            break
        new = replace(span, rng)
    return new


def few_shot_messages(system: str, label: str, example_in: str, example_out: str, text: str,
                      retry: str, feedback: Optional[str] = None) -> list[dict]:
    """The chat every built-in task sends: system rules, one worked example, then the text.

    The texts are fenced (<<< >>>) and labelled as data ("Text:", "Code:") so an instruction
    inside one (prompt injection) reads as text to rewrite, not as a request. On a retry the
    verifier's reason is appended through `retry` (a format string with {feedback}).
    """
    out = [{"role": "system", "content": system},
           {"role": "user", "content": f"{label}:\n<<<\n{example_in}\n>>>"},
           {"role": "assistant", "content": example_out},
           {"role": "user", "content": f"{label}:\n<<<\n{text}\n>>>"}]
    if feedback:
        out[-1]["content"] += "\n\n" + retry.format(feedback=feedback)
    return out


def peel(output: str) -> str:
    """The rewrite inside a model reply: drop a preamble, an echoed "Text:" label, fences and
    one pair of enclosing quotes, in any nesting. Only the edges are touched."""
    out, previous = output.strip(), None
    while out != previous:
        previous = out
        out = _PREAMBLE.sub("", out, count=1).strip()
        out = re.sub(r"^(?:rewritten text|rewritten code|rewritten|text|code)\s*:\s*", "", out,
                     flags=re.I)
        out = re.sub(r"^(?:<<<|```[\w-]*)[ \t]*\n?|\n?[ \t]*(?:>>>|```)$", "", out).strip()
        if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'" \
                and out[0] not in out[1:-1]:  # not '"Go," he said, "now"'
            out = out[1:-1].strip()
    return out


class Task(abc.ABC):
    """Subclass, implement `messages`, `detect` and `replacement`, and register it.

    The class attributes tune the shared checks; override `check` to add task-specific ones
    (call super first) and `fallback` to change the repair (e.g. reject instead)."""

    name: str = ""
    # Whether the model is asked at all. A task sets it False when its fallback replaces
    # every detected value exactly and the model was measured to (almost) never pass
    # verification: then `direct` refines every example without the model pass (most of a
    # job's time) and Refine sends no prompt. Set it back to True once an adapter passes.
    use_model: bool = True
    min_words_kept: float = 0.7  # share of the other words a rewrite must keep
    # More words than this (x original, + slack for short texts) is added content: chatter,
    # an answer to an instruction inside the text, a continuation.
    max_words_growth: float = 1.5
    words_slack: int = 8
    # A faithful task's rewrite may change nothing but the detected values (and what agrees
    # with them): every other edit fails as `content_changed` (see tasks/alignment.py).
    faithful: bool = False
    # How a text too long for one model reply is split (segmentation.py): "prose" at
    # paragraphs, lines, sentences; "code" at top-level blocks, then lines.
    text_kind: str = "prose"

    @abc.abstractmethod
    def messages(self, text: str, feedback: Optional[str] = None) -> list[dict]:
        """Chat messages asking the model to refine `text`. `feedback` (on a retry) says
        what was wrong with the previous rewrite, for a stricter prompt."""

    @abc.abstractmethod
    def detect(self, text: str) -> list[Span]:
        """The values in `text` that must not survive refinement, in text order."""

    def replacement(self, span: Span, rng: random.Random) -> str:
        """A realistic value of the same kind and format as span.value (never a
        placeholder). Only called by the default `fallback`."""
        raise NotImplementedError(f"task {self.name!r} has no replacement for "
                                  f"{span.category!r}")

    def kind(self, span: Span) -> str:
        """What `check` counts to tell a new sensitive value from a replaced one: the
        category by default. A task whose detectors may name one value differently (a fake
        token matched by a sibling rule) counts coarser kinds."""
        return span.category

    def missed_identifier(self, old: str, new: str) -> bool:
        """For a faithful task: did a rewrite that changed `old` to `new` replace a value the
        detectors missed? By default nothing is explained that way."""
        return False

    def parse(self, output: str) -> str:
        return peel(output)

    @functools.lru_cache(maxsize=256)  # review and fallback of one example detect once
    def spans(self, text: str) -> tuple:
        return tuple(self.detect(text))

    def check(self, original: str, spans: Sequence[Span], rewrite: str) -> tuple[str, str]:
        """(reason, detail) for a rewrite that fails, ("", "") for one that passes."""
        if not rewrite.strip():
            return "empty_rewrite", "the rewrite is empty"
        leaked = [s for s in spans if s.value in rewrite]
        if leaked:
            return "leaked_value", (f"{len(leaked)} detected value(s) still present "
                                    f"({', '.join(sorted({s.category for s in leaked}))})")
        if _PLACEHOLDER.search(rewrite):
            return "placeholder", f"placeholder {_PLACEHOLDER.search(rewrite).group()!r}"
        before = _by_category(map(self.kind, spans))
        after = _by_category(map(self.kind, self.spans(rewrite)))
        grown = sorted(c for c in after if after[c] > before.get(c, 0))
        if grown:
            return "new_sensitive", f"new values detected in the rewrite: {', '.join(grown)}"
        kept = words_kept(original, spans, rewrite)
        if kept < self.min_words_kept:
            return "content_lost", f"kept {kept:.0%} of the other words"
        if len(words(rewrite)) > len(words(original)) * self.max_words_growth \
                + self.words_slack:
            return "content_added", (f"{len(words(rewrite))} words for "
                                     f"{len(words(original))} in the original")
        if self.faithful:
            edits = unexplained_edits(original, spans, rewrite, self.missed_identifier)
            if edits:
                return "content_changed", (f"{len(edits)} edit(s) outside the detected values, "
                                           f"first: {edits[0].describe()}")
        return "", ""

    def review(self, original: str, rewrite: Optional[str]) -> Review:
        if rewrite is None:
            return Review(None, "no_rewrite", "the model gave no usable reply")
        spans = self.spans(original)
        reason, detail = self.check(original, spans, rewrite)
        if reason:
            return Review(None, reason, detail)
        if words(rewrite) == words(original):
            # Only case, spacing or punctuation moved: keep the original byte for byte rather
            # than adopt cosmetic edits as a "rewrite".
            return Review(Verification("unchanged", original))
        return Review(Verification("rewritten", rewrite, diff_changes(original, rewrite, spans)))

    def review_reply(self, original: str, reply: str, hit_max_tokens: bool) -> Review:
        """`review` of a model reply as generated: one cut off at max_new_tokens is never
        accepted (its end is missing), an empty one is no rewrite."""
        if hit_max_tokens:
            return Review(None, "truncated", "the reply ran to max_new_tokens")
        return self.review(original, self.parse(reply) if reply.strip() else None)

    def fallback(self, example_id: str, original: str, seed: int, reason: str = "", *,
                 fixed: Optional[Mapping[str, str]] = None) -> Verification:
        """Every detected span replaced by `replacement`, the same value by the same fake.
        With nothing detected this is the original text, still marked `fallback`: the model
        may have been right that something needed replacing, and the verdict must not claim
        otherwise.

        fixed: value -> replacement already decided elsewhere in the document (the model's
        rewrite of another segment of a long example, see beam/segments.py): such a value
        keeps that replacement, and no other value is given one of them."""
        fixed = dict(fixed or {})
        taken = set(fixed.values())
        fakes: dict = {}

        def fake(span: Span) -> str:
            if span.value in fixed:
                return fixed[span.value]
            key = (span.category, span.value)
            if key not in fakes:
                rng = seeded_rng(seed, example_id, span.value)
                new = distinct_replacement(span, rng, self.replacement)
                for _ in range(8):
                    if new not in taken:
                        break
                    new = distinct_replacement(span, rng, self.replacement)
                fakes[key] = new
            return fakes[key]

        text, changes = replace_spans(original, self.spans(original), fake)
        return Verification("fallback", text, changes, reason)

    def direct(self, example_id: str, original: str, seed: int) -> Optional[Verification]:
        """The verification of an example refined without the model, or None when the model
        is to be asked (`use_model`). Nothing detected: `unchanged`; else the fallback."""
        if self.use_model:
            return None
        if not self.spans(original):
            return Verification("unchanged", original)
        return self.fallback(example_id, original, seed, "model_skipped")

    def verify(self, example_id: str, original: str, rewrite: Optional[str],
               seed: int) -> Verification:
        """A last attempt: the reviewed rewrite, or the fallback with the failure reason."""
        review = self.review(original, rewrite)
        if review.accepted is not None:
            return review.accepted
        return self.fallback(example_id, original, seed, review.reason)


def _by_category(kinds) -> dict:
    out: dict = {}
    for kind in kinds:
        out[kind] = out.get(kind, 0) + 1
    return out


_REGISTRY: dict[str, Callable[[], Task]] = {}


def register_task(name: str, factory: Optional[Callable[[], Task]] = None):
    """Registers `factory` (a Task subclass or any callable returning a Task) under `name`.
    Without a factory it is a class decorator: `@register_task("secrets")`."""
    if factory is None:
        def decorate(cls):
            register_task(name, cls)
            return cls
        return decorate
    if name in _REGISTRY:
        raise ValueError(f"task {name!r} is already registered")
    if isinstance(factory, type) and issubclass(factory, Task) and not factory.name:
        factory.name = name
    _REGISTRY[name] = factory
    return factory


def task_names() -> list[str]:
    return sorted(_REGISTRY)


@functools.lru_cache(maxsize=None)
def _instance(name: str) -> Task:
    return _REGISTRY[name]()


def get_task(task) -> Task:
    """A Task instance from a name (one shared instance per process: detectors such as an NER
    model load once) or an instance."""
    if isinstance(task, Task):
        return task
    if task not in _REGISTRY:
        raise ValueError(f"unknown task {task!r}; registered: {', '.join(task_names())}")
    return _instance(task)
