"""report.html, rendered from the report dict alone (the content of report.json), so a page
can be rebuilt from any run's JSON (`python -m gdr_beam.report DIR`).

Order: the answer first (inputs -> outputs, the balance check, verdict shares, dead letters),
then the pictures (inline SVG), then before/after samples per verdict with a search box, then
the run's settings. One self-contained file: no network, no external script or style; the only
script is a few lines that filter the samples (the page reads fine without it). Every value
from the report is escaped.
"""

from __future__ import annotations

import html
from typing import Mapping, Sequence

from gdr_beam.report import charts
from gdr_beam.report.diffs import MAX_DIFF_CHARS, diff_segments

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .sub { color: #555; margin-top: 0; }
.headline { display: flex; flex-wrap: wrap; gap: 1em; margin: 1.2em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.7em 1em; min-width: 9em; }
.card .n { font-size: 1.8em; font-weight: bold; } .card .what { color: #555; }
.ok { color: #1b7a3a; } .bad { color: #b00020; font-weight: bold; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1em; }
figure svg { max-width: 100%; height: auto; }
figure { margin: 0; border: 1px solid #eee; border-radius: 6px; padding: 0.6em; }
figcaption { font-weight: bold; margin-bottom: 0.4em; } .note { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
del { background: #fdd; text-decoration: line-through; }
ins { background: #cfc; text-decoration: none; font-weight: bold; }
.text { white-space: pre-wrap; font-family: monospace; width: 50%; }
.sample { margin: 0.8em 0; } .sample h4 { margin: 0.2em 0; }
#q { font-size: 1em; padding: 0.3em; width: 24em; }
"""

_SEARCH = """
document.getElementById('q').addEventListener('input', function () {
  var q = this.value.toLowerCase();
  document.querySelectorAll('.sample').forEach(function (el) {
    el.style.display = (!q || el.textContent.toLowerCase().indexOf(q) >= 0) ? '' : 'none';
  });
});
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _table(rows: Sequence, header: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(share) -> str:
    return f"{100 * share:.1f}%" if isinstance(share, (int, float)) else "–"


def _card(number, what, css="") -> str:
    return (f'<div class="card {css}"><div class="n">{_e(number)}</div>'
            f'<div class="what">{_e(what)}</div></div>')


def _by_count(counts: Mapping) -> list:
    # Largest first; report.json stores its keys sorted, so order is decided here.
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))


def _figure(name: str, caption: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{_e(note)}</p>' if note else ""
    return (f'<figure data-chart="{_e(name)}"><figcaption>{_e(caption)}</figcaption>'
            f"{body}{note_html}</figure>")


def _diff_html(before: str, after: str) -> tuple:
    """(before with deletions marked, after with insertions marked), escaped."""
    left, right = [], []
    for op, text in diff_segments(before, after):
        if op == "equal":
            left.append(_e(text))
            right.append(_e(text))
        elif op == "delete":
            left.append(f"<del>{_e(text)}</del>")
        else:
            right.append(f"<ins>{_e(text)}</ins>")
    return "".join(left), "".join(right)


def _headline(report: Mapping) -> list:
    counts = report.get("counts", {})
    by_verdict = report.get("outputs_by_verdict", {})
    shares = report.get("verdict_shares", {})
    ok = report.get("balanced")
    cards = [_card(f"{charts.fmt(counts.get('inputs', 0))} → "
                   f"{charts.fmt(counts.get('outputs', 0))}", "inputs → outputs")]
    for verdict in ("rewritten", "fallback", "unchanged"):
        if verdict in shares or verdict in by_verdict:
            cards.append(_card(_pct(shares.get(verdict)),
                               f"{verdict} ({charts.fmt(by_verdict.get(verdict, 0))})"))
    cards.append(_card(charts.fmt(counts.get("dead_letters", 0)), "dead letters",
                       "bad" if counts.get("dead_letters") else ""))
    cards.append(_card(f"{charts.fmt(counts.get('filtered', 0))} / "
                       f"{charts.fmt(counts.get('deduplicated', 0))}",
                       "filtered / deduplicated"))
    parts = [f'<div class="headline">{"".join(cards)}</div>',
             f"<p class=\"{'ok' if ok else 'bad'}\">{'Balanced' if ok else 'NOT balanced'}: "
             f"{_e(report.get('balance', ''))}</p>"]
    if report.get("writes_balanced") is False:
        parts.append('<p class="bad">The shards on disk do not hold every refined record '
                     "(see dead letters at stage write).</p>")
    throughput = report.get("throughput", {})
    if throughput.get("elapsed_s"):
        rate = f", {charts.fmt(throughput['tokens_per_s'])} generated tokens/s" \
            if "tokens_per_s" in throughput else ""
        parts.append(f"<p>{_e(charts.fmt(float(throughput['elapsed_s'])))} s end to end, "
                     f"{_e(charts.fmt(float(throughput.get('examples_per_s', 0))))} "
                     f"examples/s{_e(rate)}.</p>")
    return parts


def _charts(report: Mapping) -> list:
    figures = []
    by_verdict = report.get("outputs_by_verdict", {})
    shares = report.get("verdict_shares", {})
    items = _by_count(by_verdict)
    figures.append(_figure("verdicts", "Outputs by verdict", charts.bar_chart(
        items, "outputs by verdict", colors=charts.VERDICT_COLORS,
        suffix=[f"({_pct(shares.get(v))})" for v, _ in items])))
    categories = report.get("replaced_by_category", {})
    figures.append(_figure("categories", "Replaced values by category",
                           charts.bar_chart(_by_count(categories), "replaced values"),
                           "Every replaced span of the written outputs (their `changes`)."))
    failures = report.get("verifier_failures", {})
    reasons = failures.get("attempts_by_reason", {})
    figures.append(_figure(
        "failure_reasons", "Why the model's rewrites were not used",
        charts.bar_chart(_by_count(reasons), "verifier failure reasons"),
        f"The verifier's reasons for the failed model attempts of the "
        f"{failures.get('fallbacks', 0)} fallback outputs (each attempt counted; "
        f"`fallback_reasons`)."))
    segmented = report.get("segmented") or {}
    if segmented.get("outputs"):
        by_verdict = segmented.get("segments_by_verdict", {})
        figures.append(_figure(
            "segments", "Long texts refined in segments",
            charts.bar_chart(_by_count(by_verdict), "segments by verdict",
                             colors=charts.VERDICT_COLORS),
            f"{segmented['outputs']} outputs were too long for one model reply and were "
            f"refined in {segmented.get('segments', 0)} segments; each segment's verdict "
            f"(an output is `fallback` when any of its segments fell back; `segments`)."))
    lengths = report.get("text_length")
    if lengths:
        figures.append(_figure(
            "text_length", "Text length, inputs vs outputs (characters)",
            charts.histogram(lengths["buckets"], lengths["inputs"], lengths["outputs"],
                             "text length histogram"),
            f"Mean {lengths.get('mean_inputs')} characters in, "
            f"{lengths.get('mean_outputs')} out."))
    div = report.get("diversity")
    if div and div.get("sample_size"):
        names = ["distinct_1", "distinct_2", "gzip_ratio", "near_duplicate_rate"]
        figures.append(_figure(
            "diversity", "Diversity, before vs after refinement",
            charts.paired_bar_chart(names, [div["before"][n] for n in names],
                                    [div["after"][n] for n in names], "diversity"),
            f"On the same {div['sample_size']} examples (a deterministic sample, each text "
            f"cut to {div.get('max_chars')} characters). distinct-n: distinct word n-grams / "
            "all; gzip ratio: compressed / raw size (higher: less repetitive); near-duplicate "
            "rate: share of texts with another at word-3-gram Jaccard >= 0.5 (lower is "
            "better)."))
    timeline = report.get("timeline") or {}
    points = timeline.get("points") or []
    use_tokens = any(p.get("tokens") for p in points)
    key, unit = ("tokens_per_s", "tokens/s") if use_tokens else ("examples_per_s", "examples/s")
    figures.append(_figure(
        "throughput", f"Throughput over time ({unit} generated)",
        charts.line_chart([p["t_s"] for p in points], [p[key] for p in points],
                          "throughput over time", y_unit=unit,
                          note="Throughput over time: not recorded (only the job in "
                               "pipelines.refine records it)."),
        f"Per {timeline.get('bucket_s')} s bucket from the job's start." if points else ""))
    dead = [(f"{stage}/{reason}", n)
            for stage, reasons in report.get("dead_letters_by_stage", {}).items()
            for reason, n in reasons.items()]
    dropped = [(f"filtered/{r}", n) for r, n in report.get("filtered_by_reason", {}).items()] \
        + [(f"deduplicated/{r}", n) for r, n in report.get("deduplicated_by_reason", {}).items()]
    figures.append(_figure("dead_letters", "Dead letters and drops by reason",
                           charts.bar_chart(dead + dropped, "dead letters and drops")))
    return ['<h2>At a glance</h2><div class="charts">'] + figures + ["</div>"]


def _samples(report: Mapping) -> list:
    samples = report.get("samples", [])
    parts = ["<h2>Samples, before and after</h2>",
             '<p><input id="q" type="search" placeholder="Search samples (text, id, reason)" '
             'aria-label="search samples"> <span class="note">Deleted text is '
             '<del>struck</del>, inserted text <ins>highlighted</ins>. A deterministic sample '
             "per verdict.</span></p>"]
    by_verdict: dict = {}
    for sample in samples:
        by_verdict.setdefault(sample.get("verdict"), []).append(sample)
    counts = report.get("outputs_by_verdict", {})
    for verdict in sorted(by_verdict, key=lambda v: str(v)):
        group = by_verdict[verdict]
        parts.append(f'<details open class="verdict" data-verdict="{_e(verdict)}"><summary>'
                     f"<b>{_e(verdict)}</b>: {len(group)} shown of "
                     f"{_e(charts.fmt(counts.get(verdict, len(group))))}</summary>")
        for sample in group:
            before, after = sample.get("before"), sample.get("after") or ""
            if before is None:
                left, right = "<em>(original not found)</em>", _e(after)
            else:
                left, right = _diff_html(before[:MAX_DIFF_CHARS], after[:MAX_DIFF_CHARS])
            reasons = sample.get("fallback_reasons") or []
            why = (f' <span class="note">model attempts failed: '
                   f'{_e(", ".join(map(str, reasons)))}</span>') if reasons else ""
            changes = sample.get("task_changes")
            categories = sorted({str(c.get("category")) for c in changes
                                 if isinstance(c, Mapping) and c.get("category")}) \
                if isinstance(changes, list) else []
            replaced = (f' <span class="note">{" · " if why else ""}replaced: '
                        f'{_e(", ".join(categories))}</span>' if categories else "")
            parts.append(f'<div class="sample"><h4>{_e(sample.get("id"))} — {_e(verdict)}'
                         f"</h4>{why}{replaced}"
                         "<table><tr><th>before</th><th>after</th></tr>"
                         f'<tr><td class="text">{left}</td><td class="text">{right}</td></tr>'
                         "</table></div>")
        parts.append("</details>")
    dead_samples = report.get("dead_letter_samples", [])
    if dead_samples:
        parts += ["<h3>Dead letter samples</h3>",
                  _table([(d.get("stage"), d.get("reason"), d.get("id"), d.get("source"),
                           d.get("detail")) for d in dead_samples],
                         ["stage", "reason", "id", "source", "detail"])]
    return parts


_COUNT_ORDER = ("inputs", "read", "refined", "outputs", "filtered", "deduplicated",
                "dead_letters")


def _in_order(counts: Mapping, order: Sequence[str]) -> list:
    return [(k, counts[k]) for k in order if k in counts] + \
        sorted((k, v) for k, v in counts.items() if k not in order)


def _settings(report: Mapping) -> list:
    parts = ["<h2>Run settings</h2>",
             _table(sorted(report.get("config", {}).items()), ["setting", "value"]),
             "<h3>Counts</h3>", _table(_in_order(report.get("counts", {}), _COUNT_ORDER),
                                       ["what", "examples"]),
             "<h3>Throughput</h3>",
             _table(sorted(report.get("throughput", {}).items()), ["measure", "value"])]
    files = report.get("files", [])
    if files:
        parts += ["<h3>Output files</h3><ul>"] + [f"<li>{_e(p)}</li>" for p in files] \
            + ["</ul>"]
    return parts


def render_html(report: Mapping) -> str:
    config = report.get("config", {})
    title = f"GDR run report: {config.get('task', '')} {config.get('name', '')}".strip()
    model = config.get("model") or "embedded SmolLM2-135M-Instruct"
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_e(title)}</h1>",
             f'<p class="sub">{_e(config.get("input", ""))} → {_e(config.get("output_dir", ""))}'
             f" · model {_e(model)} · adapter {_e(config.get('adapter') or 'none')}"
             f"{' · finished ' + _e(report['finished_at']) if report.get('finished_at') else ''}"
             "</p>"]
    parts += _headline(report)
    parts += _charts(report)
    parts += _samples(report)
    parts += _settings(report)
    parts.append(f"<script>{_SEARCH}</script></body></html>\n")
    return "\n".join(parts)
