"""Throughput over time, through Beam counters (the only channel from workers to the launcher
that every runner has).

Each generated batch adds its examples and tokens to a counter named for the time bucket it
finished in, measured from the job's start (`started_at`, the launcher's clock; Dataflow
workers' clocks are NTP-synced, close enough for buckets of 5 s and more):

    gdr/timeline/examples_<width>s_<index>, gdr/timeline/tokens_<width>s_<index>

at three widths at once, each up to a horizon, so the counter count stays bounded (a few
hundred for a day-long job) while a two-minute local run still gets 5-second resolution:
5 s buckets for the first 5 minutes, 1 min for the first 2 hours, 15 min for ever. The report
uses the finest width whose horizon covers the whole run.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional

from apache_beam.metrics import Metrics

NAMESPACE = "gdr"
PREFIX = "gdr/timeline/"
# (bucket width in seconds, number of buckets kept; None: no horizon)
LEVELS = ((5, 60), (60, 120), (900, None))
_NAME = re.compile(r"^gdr/timeline/(examples|tokens)_(\d+)s_(\d+)$")


def record(started_at: float, now: float, examples: int, tokens: int) -> None:
    """Counts one finished batch into its time bucket at every level."""
    t = max(0.0, now - started_at)
    for width, horizon in LEVELS:
        index = int(t // width)
        if horizon is not None and index >= horizon:
            continue
        Metrics.counter(NAMESPACE, f"{PREFIX}examples_{width}s_{index:05d}").inc(examples)
        Metrics.counter(NAMESPACE, f"{PREFIX}tokens_{width}s_{index:05d}").inc(tokens)


def from_counters(values: Mapping[str, int], elapsed_s: Optional[float]) -> dict:
    """Counter values (name -> int, names as `record` writes them) -> the report's timeline:
    {"bucket_s": width, "points": [{"t_s", "examples", "tokens", "examples_per_s",
    "tokens_per_s"}]} with one point per bucket from 0 to the last one seen, empty ones
    included (a stall shows as zeros, not as a line drawn over it)."""
    by_width: dict = {}
    for name, value in values.items():
        match = _NAME.match(name)
        if match and value:
            what, width, index = match.group(1), int(match.group(2)), int(match.group(3))
            by_width.setdefault(width, {}).setdefault(index, {"examples": 0, "tokens": 0})
            by_width[width][index][what] += int(value)
    if not by_width:
        return {"bucket_s": None, "points": []}
    last_seen = max(max(b) * w + w for w, b in by_width.items())
    span = max(elapsed_s or 0.0, last_seen)
    width = next((w for w, horizon in LEVELS
                  if w in by_width and (horizon is None or span <= w * horizon)),
                 max(by_width))
    buckets = by_width[width]
    points = []
    for index in range(max(buckets) + 1):
        b = buckets.get(index, {"examples": 0, "tokens": 0})
        points.append({"t_s": index * width, "examples": b["examples"], "tokens": b["tokens"],
                       "examples_per_s": round(b["examples"] / width, 3),
                       "tokens_per_s": round(b["tokens"] / width, 2)})
    return {"bucket_s": width, "points": points}
