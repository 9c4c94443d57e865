"""One document from its separately refined segments (a long example, see segmentation.py).

Each segment of a long document is rewritten and verified on its own, like any short example.
`assemble` then makes the document's one output, by these rules:

  1. A segment whose model rewrite passed verification keeps it; one whose rewrite failed (or
     that never reached the model: a failed batch, ...) is repaired by the task's fallback.
  2. One identity map per document (faithful tasks, e.g. pii): a value gets one replacement
     everywhere. The replacements of accepted rewrites are read from their `changes`, in
     document order; a rewrite that gives a value another replacement than an earlier segment
     did, or gives two values one replacement, falls back (`inconsistent_across_segments`).
     The fallback is computed once over the whole document with those replacements fixed
     (Task.fallback(fixed=...)), so it agrees with the model's choices and with itself
     ("Laura Chen" in the first paragraph and "Ms. Chen" in the last).
  3. The reassembled document is verified again as a whole: a value detected in the whole
     document that survives in any segment's output makes that segment fall back
     (`leaked_in_document`); if one still survives, the whole document is the fallback.
  4. Separators between segments are the original's bytes; `changes` are in the document's
     offsets. Verdict: `fallback` when any segment fell back (its reasons in the document's
     fallback reasons), else `rewritten`, else `unchanged` (the original, byte for byte).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

from gdr_beam.tasks.base import CHANGE_EDGE, Span, Task, Verification, name_word_pairs

INCONSISTENT = "inconsistent_across_segments"
LEAKED = "leaked_in_document"
MISSING = "segment_missing"


@dataclasses.dataclass(frozen=True)
class SegmentResult:
    """What the model pass made of one segment: its accepted Verification (rewritten or
    unchanged, offsets within the segment), or None with the reason codes of its failures."""
    index: int
    check: Optional[Verification]
    reasons: Tuple[str, ...] = ()
    model: str = ""


@dataclasses.dataclass(frozen=True)
class Assembled:
    verification: Verification  # the whole document's
    reasons: Tuple[str, ...]  # fallback reasons: of each segment that fell back, in order
    segments: Tuple[dict, ...]  # per segment: {"start", "end", "verdict"}
    model: str = ""


def assemble(task: Task, doc_id: str, text: str, ranges: Sequence[Tuple[int, int]],
             results: Sequence[SegmentResult], seed: int) -> Assembled:
    """The document's output from its segments' results (see the module docstring)."""
    by_index = {r.index: r for r in results}
    parts: List[Optional[Verification]] = []
    reasons: List[Tuple[str, ...]] = []
    for i in range(len(ranges)):
        result = by_index.get(i)
        parts.append(result.check if result is not None and _accepted(result.check) else None)
        reasons.append((MISSING,) if result is None else tuple(result.reasons))
    model = next((r.model for r in results if r.model), "")
    spans = task.spans(text)
    fixed = _identity_map(text, ranges, parts, reasons, spans) if task.faithful else {}
    whole = None
    for _ in range(3):
        cut = None
        if any(p is None for p in parts):
            whole = whole or task.fallback(doc_id, text, seed, fixed=fixed)
            cut = _cut_fallback(text, ranges, whole) if whole.verdict != "rejected" else None
            if cut is None:
                break
        outputs = [p.text if p is not None else cut[i] for i, p in enumerate(parts)]
        leaking = [i for i, out in enumerate(outputs)
                   if parts[i] is not None and _leaks(out, spans)]
        if not leaking:
            assembled = _join(text, ranges, parts, reasons, outputs, whole, model)
            if not _leaks(assembled.verification.text, spans):
                return assembled
            break  # a value across a segment boundary: only the whole fallback is safe
        for i in leaking:
            parts[i] = None
            reasons[i] = reasons[i] + (LEAKED,)
    whole = whole or task.fallback(doc_id, text, seed, fixed=fixed)
    failed = [r for r in reasons if r] or [(LEAKED,)]
    verification = whole if whole.verdict == "rejected" else Verification(
        "fallback", whole.text, whole.changes, failed[0][0])
    return Assembled(verification, tuple(c for r in failed for c in r),
                     tuple({"start": a, "end": b, "verdict": "fallback"} for a, b in ranges),
                     model)


def _leaks(out: str, spans: Sequence[Span]) -> bool:
    """Does `out` hold a detected value as a whole word (not "Ann" inside "Annual")?"""
    for s in spans:
        pos = out.find(s.value)
        while pos >= 0:
            before = out[pos - 1] if pos else " "
            after = out[pos + len(s.value)] if pos + len(s.value) < len(out) else " "
            if not ((before.isalnum() and s.value[:1].isalnum())
                    or (after.isalnum() and s.value[-1:].isalnum())):
                return True
            pos = out.find(s.value, pos + 1)
    return False


def _accepted(check: Optional[Verification]) -> bool:
    return check is not None and check.verdict in ("rewritten", "unchanged")


def _identity_map(text: str, ranges, parts: List[Optional[Verification]],
                  reasons: List[tuple], spans: Sequence[Span]) -> dict:
    """value -> replacement from the accepted rewrites, first segment first; a rewrite that
    contradicts the map so far is demoted to the fallback (in place)."""
    values = {s.value: s.category for s in spans}
    fixed: dict = {}
    owner: dict = {}
    words: dict = {}  # a person's name word -> its fake word ("Chen" -> "Torres")
    for i, part in enumerate(parts):
        if part is None or part.verdict != "rewritten":
            continue
        pairs = []
        for c in part.changes:
            old = text[ranges[i][0] + c["start"]:ranges[i][0] + c["end"]].strip(CHANGE_EDGE)
            if old in values:  # also a value the segment's own detection missed
                pairs.append((old, c["replacement"].strip(CHANGE_EDGE)))
        new_words = {}
        for old, new in pairs:
            if values[old] == "person":
                new_words.update(name_word_pairs(old, new))
        clash = any(fixed.get(old, new) != new or owner.get(new, old) != old
                    for old, new in pairs) or any(words.get(w, n) != n
                                                  for w, n in new_words.items())
        if clash:
            parts[i] = None
            reasons[i] = reasons[i] + (INCONSISTENT,)
            continue
        for old, new in pairs:
            fixed[old], owner[new] = new, old
        words.update(new_words)
    return fixed


def _cut_fallback(text: str, ranges, whole: Verification) -> Optional[List[str]]:
    """The whole-document fallback cut into the segments' parts, from its `changes`; None when
    a change lies across or outside the segments, or the changes do not rebuild its text.
    One pass: ranges and changes are both in text order."""
    changes = sorted(whole.changes, key=lambda c: c["start"])
    out, rebuilt, k, pos = [], [], 0, 0
    for a, b in ranges:
        pieces, at = [], a
        while k < len(changes) and changes[k]["start"] < b:
            c = changes[k]
            if c["start"] < a or c["end"] > b:
                return None  # across a boundary, or in a separator between segments
            pieces += [text[at:c["start"]], c["replacement"]]
            at, k = c["end"], k + 1
        out.append("".join(pieces) + text[at:b])
        rebuilt += [text[pos:a], out[-1]]
        pos = b
    if k < len(changes) or "".join(rebuilt) + text[pos:] != whole.text:
        return None
    return out


def _join(text: str, ranges, parts, reasons, outputs: List[str],
          whole: Optional[Verification], model: str) -> Assembled:
    pieces, changes, segments, failed, pos = [], [], [], [], 0
    for (a, b), part, why, out in zip(ranges, parts, reasons, outputs):
        pieces += [text[pos:a], out]
        pos = b
        if part is None:
            verdict = "fallback"
            changes += [c for c in whole.changes if a <= c["start"] and c["end"] <= b]
            failed.append(why)
        else:
            verdict = part.verdict
            changes += [dict(c, start=c["start"] + a, end=c["end"] + a) for c in part.changes]
        segments.append({"start": a, "end": b, "verdict": verdict})
    pieces.append(text[pos:])
    verdicts = {s["verdict"] for s in segments}
    if "fallback" in verdicts:
        verdict = "fallback"
    elif "rewritten" in verdicts:
        verdict = "rewritten"
    else:
        verdict = "unchanged"
    joined = text if verdict == "unchanged" else "".join(pieces)
    reason = failed[0][0] if failed and failed[0] else ""
    return Assembled(Verification(verdict, joined, tuple(sorted(changes, key=lambda c: c["start"])),
                                  reason),
                     tuple(c for r in failed for c in r), tuple(segments), model)
