"""All pii detectors together: non-overlapping spans in text order."""

from __future__ import annotations

from gdr_beam.tasks.base import Span
from gdr_beam.tasks.pii.names import NER, merge_persons, outside, gazetteer_persons
from gdr_beam.tasks.pii.structured import DETECTORS


def detect(text: str, names: bool = True) -> list[Span]:
    """Non-overlapping spans in text order. Structured detectors first: a phone number the NER
    model calls a person is still a phone number."""
    spans: list[Span] = []

    def add(span: Span):
        if not any(span.overlaps(s.start, s.end) for s in spans):
            spans.append(span)

    for category, find in DETECTORS:
        for start, end in find(text):
            add(Span(start, end, category, text[start:end]))
    if names:
        candidates = [c for s in NER.persons(text) + gazetteer_persons(text)
                      for c in outside(text, s, spans)]
        for span in merge_persons(text, candidates):
            add(span)
    return sorted(spans, key=lambda s: s.start)

