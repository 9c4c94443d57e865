"""How well refinement works: leaks, clean examples, words kept, placeholders, verdicts, diversity.

Builds its own evaluation sets with known planted values (seeded, so every run sees the same
data): `pii` from Faker templates (names, emails, phones, street addresses, card numbers, SSNs,
IBANs, IPs, dates of birth), `secrets` as Python/config snippets with planted keys of common
formats, `toxicity` as short messages with planted profanity, insults and threats. Each set goes
through the full job (`pipelines.refine` on the DirectRunner, the embedded model unless --model)
and, in the same run, through Presidio's default anonymiser (AnalyzerEngine + AnonymizerEngine,
default operators), the usual non-generative peer. Prints JSON per task:

  leak_rate            planted values found verbatim in the outputs / all planted values (a
                       person name counts as leaked when any one of its name words is left)
  clean_examples       share of examples whose output holds none of its planted values
  words_kept           share of the original's other words (not part of a planted value) kept
  placeholders         outputs holding a placeholder such as <PERSON> or [REDACTED]
  leak_by_category     the same per category (leak_by_source: per category:kind:source where a
                       set labels its values so, e.g. national_id:pl_pesel:faker)
  quasi_leak_rate      planted quasi-identifiers (cities, states, postcodes, organisations,
                       jobs, ages, years, dates; pii_sets.py) left verbatim, per kind in
                       quasi_leak_by_kind; words_kept_outside_all_planted: the other words
                       kept, outside every planted value (with --pii_policy, the cost of
                       rewriting more). Quasi values are in no other figure.
  verdicts             output verdict mix, plus dead letters by reason
  diversity            distinct-1/2 and gzip compression ratio of the outputs vs the originals
                       (refinement should not collapse the data's variety)

Dead letters (e.g. `rejected` abuse) are not outputs: they leak nothing and are reported apart.

    python benchmarks/refine_quality.py                      # all tasks, default sizes
    python benchmarks/refine_quality.py --tasks=pii --n_pii=200
    python benchmarks/refine_quality.py --tasks=pii_presidio_dev --pii_policy=quasi --fallback_only
"""

import argparse
import collections
import glob
import gzip
import json
import os
import random
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from results_io import save_json  # noqa: E402  (a sibling module)
from pii_sets import Name, Planted  # noqa: E402  (a sibling module)

_PARSER = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
_PARSER.add_argument("--tasks", default="pii,secrets,toxicity")
_PARSER.add_argument("--n_pii", type=int, default=100)
_PARSER.add_argument("--n_secrets", type=int, default=40)
_PARSER.add_argument("--n_toxicity", type=int, default=40)
_PARSER.add_argument("--n_long", type=int, default=6, help="Documents per long-document set.")
_PARSER.add_argument("--model", default=None, help="Checkpoint (default: embedded SmolLM2).")
_PARSER.add_argument("--adapter", default=None,
                     help="The job's --adapter (default: the job's own, auto: the shipped one "
                          "for the task on the embedded model).")
_PARSER.add_argument("--max_new_tokens", type=int, default=160)
_PARSER.add_argument("--max_retries", type=int, default=1)
_PARSER.add_argument("--seed", type=int, default=0)
_PARSER.add_argument("--out", default=None, help="Also write the JSON here.")
_PARSER.add_argument("--pii_policy", default=None,
                     choices=("direct", "quasi", "hipaa_safe_harbor"),
                     help="The pii task's --pii_policy (default: the job's, `direct`).")
_PARSER.add_argument("--fallback_only", action="store_true",
                     help="Skip the model: every output is the task's fallback (the detectors' "
                          "and fakes' floor, in seconds instead of minutes).")

_PLACEHOLDER = re.compile(r"<[A-Z_]{3,}>|\[[A-Z_]{3,}\]|\{\{?[A-Z_]{3,}\}\}?|\*{3,}|REDACTED",
                          re.I)


# --- evaluation sets: (id, text, planted values) -------------------------------------------------

NAME_LOCALES = ("en_US", "en_GB", "es_ES", "de_DE", "fr_FR", "it_IT")


_FAKER_CATEGORY = {"email": "email", "email2": "email", "phone": "phone",
                   "address": "street_address", "card": "credit_card", "iban": "iban",
                   "ssn": "ssn", "ip": "ip_address", "dob": "date_of_birth"}


def pii_set(n: int, seed: int) -> list:
    from faker import Faker
    fake = Faker("en_US")
    fake.seed_instance(seed)
    # Names from several locales: the pii task's name gazetteer is built from Faker's en_US
    # first names, so an en_US-only eval set would flatter it.
    people = Faker(list(NAME_LOCALES))
    people.seed_instance(seed)
    rng = random.Random(seed)
    templates = [
        "Hi team, {name} here. Please update my email to {email} and my phone to {phone}.",
        "Customer {name} (DOB {dob}) called from {phone} about a refund to card {card}.",
        "Ship the replacement to {name}, {address}. Contact: {email}.",
        "Payroll change for {name}: new IBAN {iban}, SSN {ssn} on file.",
        "Login alert for {email} from IP {ip}; if this was not you, call {phone}.",
        "{name} and {name2} met on Tuesday to review the quarterly budget; notes go to {email}.",
        "Dear {name}, your appointment is confirmed. We will call you at {phone} the day before.",
        "Invoice 2231 for {name}, {address}. Paid by card {card} on the 3rd.",
        "Please forward the contract to {name2} at {email2}; {name} is on leave until Monday.",
        "Background check: {name}, born on {dob}, SSN {ssn}, lives at {address}.",
    ]
    out = []
    for i in range(n):
        values = {"name": people[rng.choice(NAME_LOCALES)].name(),
                  "name2": people[rng.choice(NAME_LOCALES)].name(), "email": fake.email(),
                  "email2": fake.company_email(), "phone": fake.phone_number(),
                  "address": fake.street_address() + ", " + fake.city() + ", "
                  + fake.state_abbr() + " " + fake.postcode(),
                  "card": fake.credit_card_number(card_type="visa16"),
                  "iban": fake.iban(), "ssn": fake.ssn(), "ip": fake.ipv4_public(),
                  "dob": fake.date_of_birth(minimum_age=18, maximum_age=90).isoformat()}
        template = templates[rng.randrange(len(templates))]
        used = re.findall(r"{(\w+)}", template)
        text = template.format(**values)
        planted = sorted({Name(values[k]) if k.startswith("name") else
                          Planted(values[k], _FAKER_CATEGORY[k]) for k in used})
        out.append((f"pii-{i:04d}", text, planted))
    return out


def secrets_set(n: int, seed: int) -> list:
    rng = random.Random(seed)

    def chars(alphabet, k):
        return "".join(rng.choice(alphabet) for _ in range(k))

    upper_digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    makers = [
        lambda: ("AKIA" + chars(upper_digits, 16), 'AWS_ACCESS_KEY_ID = "{v}"'),
        lambda: ("ghp_" + chars(alnum, 36), 'GITHUB_TOKEN = "{v}"'),
        lambda: ("sk_live_" + chars(alnum, 24), 'stripe.api_key = "{v}"'),
        lambda: ("xoxb-" + chars("0123456789", 12) + "-" + chars("0123456789", 13) + "-"
                 + chars(alnum, 24), 'SLACK_BOT_TOKEN = "{v}"'),
        lambda: (chars(alnum, 14), 'DB_PASSWORD = "{v}"'),
        lambda: (chars(alnum, 12), 'DATABASE_URL = "postgres://app:{v}@db.internal:5432/prod"'),
        lambda: (chars("0123456789abcdef", 40), 'api_key = "{v}"'),
    ]
    bodies = [
        "import os\n\n{secret}\nTIMEOUT = {n}\n\n\ndef connect(host):\n"
        "    return open_session(host, timeout=TIMEOUT)\n",
        "# service settings\n{secret}\nRETRIES = {n}\nLOG_LEVEL = \"info\"\n",
        "class Config:\n    {secret}\n    workers = {n}\n    region = \"eu-west-1\"\n",
    ]
    out = []
    for i in range(n):
        value, line = makers[rng.randrange(len(makers))]()
        body = bodies[rng.randrange(len(bodies))]
        text = body.format(secret=line.format(v=value), n=rng.randrange(2, 60))
        out.append((f"sec-{i:04d}", text, [value]))
    return out


def toxicity_set(n: int, seed: int) -> list:
    rng = random.Random(seed)
    subjects = ["the deploy script", "this pull request", "the login page", "your last commit",
                "the release notes", "the staging server", "this meeting", "the test suite"]
    toxic = [("fucking", "{s} is {w} broken again, please look at it today."),
             ("idiot", "Only an {w} would merge {s} without running it."),
             ("shit", "{s} is complete {w}, we need a rollback before noon."),
             ("stupid", "What a {w} idea to change {s} on a Friday."),
             ("I will kill you", "{w} if {s} breaks production again."),
             ("moron", "Ask the {w} who wrote {s} to fix the timeout.")]
    clean = ["{s} needs another review before we ship it.",
             "Thanks for fixing {s}, it works well now."]
    out = []
    for i in range(n):
        s = rng.choice(subjects)
        if i % 4 == 3:
            out.append((f"tox-{i:04d}", rng.choice(clean).format(s=s).capitalize(), []))
            continue
        word, template = rng.choice(toxic)
        text = template.format(w=word, s=s)
        out.append((f"tox-{i:04d}", text[0].upper() + text[1:], [word]))
    return out


def _national_ids(n, seed):
    from pii_sets import national_id_set  # noqa: E402  (a sibling module)
    return national_id_set(n, seed)


def _ordinary_codes(n, seed):
    from pii_sets import ordinary_codes_set  # noqa: E402  (a sibling module)
    return ordinary_codes_set(n, seed)


def _long(split):
    def build(n, seed):
        from pii_sets import long_set  # noqa: E402  (a sibling module)
        return long_set(n, seed, split)
    return build


def _presidio(split, clean=False):
    def build(n, seed):
        from pii_sets import presidio_set  # noqa: E402  (a sibling module)
        return presidio_set(n, seed, split, clean)
    return build


# name -> (task, builder). `pii` is our own Faker templates (the detectors' mirror: read its
# figures as such); `pii_presidio_dev` / `pii_presidio_heldout` are built from material this
# project did not write (benchmarks/pii_sets.py); the detectors were tuned on dev only.
SETS = {"pii": ("pii", pii_set), "pii_presidio_dev": ("pii", _presidio("dev")),
        "pii_presidio_heldout": ("pii", _presidio("heldout")),
        # no direct identifiers at all: words_kept there is the false-replacement rate
        "pii_presidio_clean": ("pii", _presidio("dev", clean=True)),
        # national ids, 22 formats of 18 countries (values from Faker's locales and python-stdnum),
        # and numbers that name no person (stdnum's documented ISBNs, VAT numbers, ...): words_kept
        # there is the false-replacement rate on ordinary codes
        "pii_national_ids": ("pii", _national_ids), "pii_ordinary_codes": ("pii", _ordinary_codes),
        # 500-5,000-word letters, threads and reports of the same templates around one
        # person: long documents, refined in segments (issue 14)
        "pii_long_dev": ("pii_long", _long("dev")),
        "pii_long_heldout": ("pii_long", _long("heldout")),
        "secrets": ("secrets", secrets_set), "toxicity": ("toxicity", toxicity_set)}


# --- metrics ------------------------------------------------------------------------------------

def _words(text: str) -> list:
    return re.findall(r"\w+", text.lower())


def _distinct(texts, n: int) -> float:
    grams, total = set(), 0
    for t in texts:
        w = _words(t)
        for i in range(len(w) - n + 1):
            grams.add(tuple(w[i:i + n]))
            total += 1
    return round(len(grams) / total, 4) if total else 0.0


def _compression(texts) -> float:
    """gzip size / raw size of the corpus: higher means less repetitive."""
    raw = "\n".join(texts).encode("utf-8")
    return round(len(gzip.compress(raw, 9)) / max(len(raw), 1), 4)


def _leaked(text: str, value: str, task: str) -> bool:
    if task == "toxicity":  # a word, case-insensitive, whole-word
        return re.search(r"(?i)\b" + re.escape(value) + r"\b", text) is not None
    if isinstance(value, Name):
        return any(re.search(r"\b" + re.escape(p) + r"\b", text) for p in value.parts())
    return value in text


def _planted_spans(text: str, planted) -> list:
    """Where the planted values sit in the original (for the faithfulness measure)."""
    from gdr_beam.tasks.base import Span
    spans = []
    for v in planted:
        for m in re.finditer(re.escape(str(v)), text):
            spans.append(Span(m.start(), m.end(), getattr(v, "category", "value"), str(v)))
    return spans


def _unexplained(text: str, planted, out: str) -> list:
    """Edits of an accepted model rewrite outside the planted values (ground truth, not our
    detector) that are no agreement or punctuation change."""
    from gdr_beam.tasks.alignment import unexplained_edits
    return unexplained_edits(text, _planted_spans(text, planted), out)


def score(examples, outputs: dict, task: str, pii_policy: str = "direct") -> dict:
    """examples: [(id, text, planted)]; outputs: id -> (text, verdict[, changes]) for emitted
    examples. Planted quasi-identifiers (`quasi:<kind>`) are scored apart (`_quasi_figures`);
    every other figure is over the direct identifiers only. Under a pii_policy other than
    `direct` a model's edit of a quasi value is one it was asked for, not unexplained."""
    quasi_figures = _quasi_figures(examples, outputs)
    asked = {rid: planted for rid, _, planted in examples} if pii_policy != "direct" else {}
    examples = [(rid, text, [v for v in planted if not _is_quasi(v)])
                for rid, text, planted in examples]
    planted_total = leaked = clean = kept = other = placeholders = 0
    by_category: dict = {}
    by_source: dict = {}  # "national_id:pl_pesel:faker": the part of a category and its source
    name_words = name_words_left = 0
    rewritten = unexplained = 0
    unexplained_samples = []
    emitted = [(rid, text, planted) for rid, text, planted in examples if rid in outputs]
    for rid, text, planted in emitted:
        out = outputs[rid][0]
        leaks = [v for v in planted if _leaked(out, v, task)]
        planted_total += len(planted)
        leaked += len(leaks)
        clean += not leaks
        for v in planted:
            cat = (getattr(v, "category", "") or ("person" if isinstance(v, Name) else "value")
                   ).split(":")[0]
            total, left = by_category.get(cat, (0, 0))
            by_category[cat] = (total + 1, left + (v in leaks))
            if ":" in getattr(v, "category", ""):
                total, left = by_source.get(v.category, (0, 0))
                by_source[v.category] = (total + 1, left + (v in leaks))
            for w in v.parts() if isinstance(v, Name) else []:
                name_words += 1
                name_words_left += bool(re.search(r"\b" + re.escape(w) + r"\b", out))
        if outputs[rid][1] == "rewritten":
            rewritten += 1
            edits = _unexplained(text, asked.get(rid, planted), out)
            if edits:
                unexplained += 1
                if len(unexplained_samples) < 5:
                    unexplained_samples.append(f"{rid}: {edits[0].describe()}")
        k, n = _other_words_kept(text, planted, out)
        kept, other = kept + k, other + n
        # A placeholder the original held already (one template says "{street_name}") is not
        # one the system wrote.
        placeholders += bool(set(_PLACEHOLDER.findall(out)) - set(_PLACEHOLDER.findall(text)))
    verdicts = {}
    for rid in outputs:
        verdicts[outputs[rid][1]] = verdicts.get(outputs[rid][1], 0) + 1
    texts_in = [t for _, t, _ in emitted]
    texts_out = [outputs[rid][0] for rid, _, _ in emitted]
    return {
        "examples": len(examples), "emitted": len(emitted),
        **_long_figures(emitted, outputs),
        **_coherence_figures(emitted, outputs),
        **quasi_figures,
        "planted_values": planted_total,
        "leak_rate": round(leaked / planted_total, 4) if planted_total else 0.0,
        "clean_examples": round(clean / len(emitted), 4) if emitted else None,
        "words_kept": round(kept / other, 4) if other else None,
        "placeholders": placeholders,
        "leak_by_category": {c: f"{left}/{total}" for c, (total, left)
                             in sorted(by_category.items())},
        "leak_by_source": {c: f"{left}/{total}" for c, (total, left) in sorted(by_source.items())},
        "name_word_leak": round(name_words_left / name_words, 4) if name_words else None,
        "model_rewritten_share": round(rewritten / len(emitted), 4) if emitted else None,
        "accepted_rewrites_with_unexplained_edit": (
            f"{unexplained}/{rewritten}" if rewritten else "0/0"),
        "unexplained_edit_samples": unexplained_samples,
        "verdicts": dict(sorted(verdicts.items())),
        "diversity": {"distinct_1": [_distinct(texts_in, 1), _distinct(texts_out, 1)],
                      "distinct_2": [_distinct(texts_in, 2), _distinct(texts_out, 2)],
                      "gzip_ratio": [_compression(texts_in), _compression(texts_out)],
                      "_order": "[original, refined]"},
    }


def _other_words_kept(text: str, planted, out: str) -> tuple:
    """(kept, total): the original's words outside the planted values, and how many of them the
    output still holds."""
    planted_words = set(_words(" ".join(planted)))
    rest = [w for w in _words(text) if w not in planted_words]
    present = set(_words(out))
    return sum(w in present for w in rest), len(rest)


def _is_quasi(value) -> bool:
    return getattr(value, "category", "").startswith("quasi:")


def _quasi_figures(examples, outputs: dict) -> dict:
    """The planted quasi-identifiers (cities, organisations, ages, dates, ...; pii_sets.py):
    the share left verbatim (a whole word) in the outputs, per kind, and the share of the
    original's other words (outside every planted value, direct or quasi) that are kept: what
    a policy that rewrites more costs in words it should not have touched."""
    total = left = kept = other = 0
    by_kind: dict = {}
    for rid, text, planted in examples:
        if rid not in outputs:
            continue
        out = outputs[rid][0]
        for v in planted:
            if not _is_quasi(v):
                continue
            leaked = re.search(r"(?<!\w)" + re.escape(str(v)) + r"(?!\w)", out) is not None
            kind = v.category.split(":", 1)[1]
            k_total, k_left = by_kind.get(kind, (0, 0))
            by_kind[kind] = (k_total + 1, k_left + leaked)
            total, left = total + 1, left + leaked
        k, n = _other_words_kept(text, planted, out)
        kept, other = kept + k, other + n
    if not total:
        return {}
    return {"quasi_planted": total, "quasi_leak_rate": round(left / total, 4),
            "quasi_leak_by_kind": {k: f"{b}/{a}" for k, (a, b) in sorted(by_kind.items())},
            "words_kept_outside_all_planted": round(kept / other, 4) if other else None}


def _long_figures(emitted, outputs: dict) -> dict:
    """For outputs with `changes` (ours): examples refined in segments, the share whose text
    holds a model rewrite (a segment or the whole text `rewritten`), and consistency: of the
    planted values that occur more than once, the share whose occurrences all got one and the
    same replacement (read from `changes`, in original offsets; a kept occurrence counts as a
    different replacement), and the same ignoring kept occurrences (those are leaks)."""
    if not emitted or len(outputs[emitted[0][0]]) < 4:
        return {}
    segmented = touched = repeated = consistent = segments_total = segments_rewritten = 0
    replaced_consistent = 0
    by_verdict: dict = {}
    for rid, text, planted in emitted:
        _, verdict, changes, segments = outputs[rid]
        segmented += bool(segments)
        segments_total += len(segments)
        segments_rewritten += sum(s["verdict"] == "rewritten" for s in segments)
        for s in segments:
            by_verdict[s["verdict"]] = by_verdict.get(s["verdict"], 0) + 1
        touched += verdict == "rewritten" or any(s["verdict"] == "rewritten" for s in segments)
        for value, category in {str(v): v.category for v in planted}.items():
            # "Anne" in "Anne-Lotte" is another name, not an occurrence of "Anne".
            where = [m.start() for m in re.finditer(
                r"(?<![\w-])" + re.escape(value) + r"(?!\w|-\w)", text)]
            if len(where) < 2:
                continue
            repeated += 1
            if category.startswith("street_address"):
                # A street replaced with its town line in one place and alone in another: its
                # fake street is the replacement's first line (up to a comma).
                got = {None if r is None else re.split(r"[\n,]", r)[0].strip()
                       for r in (_replaced(text, pos, pos + len(value), changes, False)
                                 for pos in where)}
            else:
                got = {_replaced(text, pos, pos + len(value), changes) for pos in where}
            consistent += len(got) == 1 and None not in got
            # Of the occurrences that were replaced at all (a kept one is a leak, counted there).
            replaced_consistent += len(got - {None}) <= 1
    return {"segmented_examples": segmented, "segments": segments_total,
            "segments_by_verdict": dict(sorted(by_verdict.items())),
            "segments_rewritten_share": round(segments_rewritten / segments_total, 4)
            if segments_total else None,
            "with_model_rewrite_share": round(touched / len(emitted), 4),
            "repeated_values": repeated,
            "consistency": round(consistent / repeated, 4) if repeated else None,
            "consistency_of_replacements": round(replaced_consistent / repeated, 4)
            if repeated else None}


def _coherence_figures(emitted, outputs: dict) -> dict:
    """Coherence of the replacements (outputs with `changes`, ours), judged against the planted
    records, not against our detectors: a fake shared by two different planted values; a person's
    fake first name of the other gender than the record's (where the name lists know the fake's
    gender); an e-mail built from a planted person's name whose fake is not built from that
    person's fake name."""
    from gdr_beam.tasks.base import CHANGE_EDGE
    from gdr_beam.tasks.pii.gazetteers import first_name_genders
    from gdr_beam.tasks.pii.identities import plain
    if not emitted or len(outputs[emitted[0][0]]) < 3:
        return {}
    genders = first_name_genders()
    checks = {"shared_fake": [0, 0], "gender": [0, 0], "derived_email": [0, 0]}
    samples = []

    def fail(kind, what):
        checks[kind][0] += 1
        if len(samples) < 6:
            samples.append(f"{kind}: {what}")
    for rid, text, planted in emitted:
        changes = outputs[rid][2]
        fakes = {}
        for v in {str(v): v for v in planted}.values():
            m = re.search(r"(?<!\w)" + re.escape(v) + r"(?!\w)", text)  # "Emil" not in "Emilio"
            if m:
                new = _replaced(text, m.start(), m.end(), changes)
                if new is not None and new.strip(CHANGE_EDGE):
                    fakes[v] = new.strip(CHANGE_EDGE)
        owners = {}
        for v, new in fakes.items():
            owners.setdefault(new, []).append(v)
        for new, olds in owners.items():
            checks["shared_fake"][1] += 1
            if len(olds) > 1:
                fail("shared_fake", f"{rid}: {' and '.join(olds)} -> {new}")
        for v, new in fakes.items():
            if v.category == "person" and getattr(v, "gender", "") and \
                    genders.get(new.split()[0]) is not None:
                checks["gender"][1] += 1
                if genders[new.split()[0]] != v.gender:
                    fail("gender", f"{rid}: {v} ({v.gender}) -> {new}")
        people = [v for v in fakes if v.category == "person"]
        for v, new in fakes.items():
            if v.category != "email":
                continue
            local = plain(v.split("@")[0])
            owner = next((p for p in people if any(
                len(plain(w)) >= 3 and plain(w) in local for w in p.split())), None)
            if owner is None:
                continue
            checks["derived_email"][1] += 1
            if not any(len(plain(w)) >= 3 and plain(w) in plain(new.split("@")[0])
                       for w in fakes[owner].split()):
                fail("derived_email", f"{rid}: {owner} -> {fakes[owner]}, {v} -> {new}")
    return {"coherence_violations": sum(c[0] for c in checks.values()),
            "coherence": {k: f"{bad}/{n}" for k, (bad, n) in checks.items()},
            "coherence_samples": samples}


def _replaced(text: str, start: int, end: int, changes, align_words: bool = True) -> str:
    """What text[start:end] became by `changes` (original offsets); None when it was kept.
    align_words: a change reaching past the value gives the value's words of its replacement
    when the two align word for word (names); else the whole replacement."""
    from gdr_beam.tasks.base import CHANGE_EDGE
    touching = sorted((c for c in changes if c["start"] < end and start < c["end"]),
                      key=lambda c: c["start"])
    if not touching:
        return None
    if all(start <= c["start"] and c["end"] <= end for c in touching):
        pieces, pos = [], start
        for c in touching:
            pieces += [text[pos:c["start"]], c["replacement"]]
            pos = c["end"]
        return "".join(pieces) + text[pos:end]
    # Changes reaching past the value ("Laura" inside "Laura Chen" -> "Maya Torres"; "Majda
    # Jožica" inside "Majda" + "Jožica O. Berločnik", two changes): the value's words of the
    # replaced region, when the region and its replacement align word for word.
    a, b = min(start, touching[0]["start"]), max([end] + [c["end"] for c in touching])
    pieces, pos = [], a
    for c in touching:
        pieces += [text[pos:c["start"]], c["replacement"]]
        pos = c["end"]
    old, new = text[a:b].split(), ("".join(pieces) + text[pos:b]).split()
    first = len(text[a:start].split())
    if align_words and len(old) == len(new) and (text[start - 1:start].isspace() or start == a):
        return " ".join(new[first:first + len(text[start:end].split())])
    return " ".join(c["replacement"] for c in touching).strip(CHANGE_EDGE)


# --- the two systems ----------------------------------------------------------------------------

def run_gdr(task: str, examples, args, tmp: str, set_name: str = "") -> tuple:
    import tensorflow_datasets as tfds
    from gdr_beam.beam.records import DeadLetter
    from pipelines import refine

    path = os.path.join(tmp, f"{set_name or task}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for rid, text, _ in examples:
            f.write(json.dumps({"id": rid, "text": text}) + "\n")
    out_dir = os.path.join(tmp, f"{set_name or task}-out")
    job = refine.RefineJob(input=path, output_dir=out_dir, task=task, model=args.model,
                           pii_policy=args.pii_policy if task == "pii" else None,
                           adapter=args.adapter,
                           max_new_tokens=args.max_new_tokens, seed=args.seed,
                           max_retries=args.max_retries, progress_interval=60,
                           # Template sets are near duplicates by design; dedup would hide
                           # examples from the scores (it has its own tests and figures).
                           dedup="none")
    t0 = time.perf_counter()
    report = refine.run(job)
    seconds = time.perf_counter() - t0
    outputs, reasons = {}, collections.Counter()
    for ex in tfds.as_numpy(tfds.builder_from_directory(out_dir).as_dataset(split="train")):
        outputs[ex["id"].decode()] = (ex["text"].decode(), ex["verdict"].decode(),
                                      json.loads(ex["changes"].decode() or "[]"),
                                      json.loads(ex["segments"].decode() or "[]"))
        # Why the model's attempts failed: every attempt's verifier reason.
        reasons.update(str(r).split(":")[0] for r in json.loads(
            ex["fallback_reasons"].decode() or "[]"))
    dead = {}  # failures (dead_letters/) and drops on purpose (dropped/), by stage/reason
    for p in glob.glob(os.path.join(out_dir, "dead_letters", "*.jsonl")) + glob.glob(
            os.path.join(out_dir, "dropped", "*.jsonl")):
        with open(p, encoding="utf-8") as f:
            for line in f:
                d = DeadLetter.from_json_line(line)
                dead[f"{d.stage}/{d.reason}"] = dead.get(f"{d.stage}/{d.reason}", 0) + 1
    return outputs, {"seconds": round(seconds, 1), "dead_letters": dead,
                     "model_attempts_failed": dict(reasons.most_common()),
                     "balanced": report["balanced"] if report else None,
                     "generated_tokens": (report or {}).get("throughput", {}).get(
                         "generated_tokens")}


def run_fallback(task: str, examples, args) -> tuple:
    from gdr_beam.tasks import get_task
    from gdr_beam.tasks.pii.task import POLICY_TASKS
    if task == "pii" and args.pii_policy:
        task = POLICY_TASKS[args.pii_policy]
    t, t0 = get_task(task), time.perf_counter()
    outputs = {}
    for rid, text, _ in examples:
        v = t.fallback(rid, text, args.seed)
        outputs[rid] = (v.text, v.verdict, list(v.changes), [])
    return outputs, {"seconds": round(time.perf_counter() - t0, 1), "mode": "fallback_only"}


def run_presidio(examples) -> tuple:
    from gdr_beam.tasks.pii import NER
    import tldextract
    from presidio_anonymizer import AnonymizerEngine
    # Presidio's email recognizer asks tldextract, which by default fetches the public suffix
    # list from the internet on first use; use its bundled snapshot instead (no downloads).
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=()).__call__
    analyzer, anonymizer = NER.engine(), AnonymizerEngine()  # the same spaCy pipeline
    t0 = time.perf_counter()
    outputs = {}
    for rid, text, _ in examples:
        results = analyzer.analyze(text, language="en")
        outputs[rid] = (anonymizer.anonymize(text=text, analyzer_results=results).text,
                        "presidio")
    return outputs, {"seconds": round(time.perf_counter() - t0, 1)}


def main():
    args = _PARSER.parse_args()
    sizes = {"pii": args.n_pii, "secrets": args.n_secrets, "toxicity": args.n_toxicity,
             "pii_long": args.n_long}
    result = {"model": args.model or "embedded SmolLM2-135M-Instruct (GGUF)",
              "max_new_tokens": args.max_new_tokens, "max_retries": args.max_retries,
              "seed": args.seed, "tasks": {}}
    from pipelines import refine  # pylint: disable=import-outside-toplevel
    # The job's own defaults: the adapter auto-selected per task, first-attempt temperature.
    args.adapter = args.adapter or refine.RefineJob.adapter
    result["adapter"] = args.adapter
    result["temperature"] = refine.RefineJob.temperature
    result["pii_policy"] = args.pii_policy or "direct"
    with tempfile.TemporaryDirectory() as tmp:
        for set_name in args.tasks.split(","):
            if set_name not in SETS:
                raise SystemExit(f"unknown set {set_name!r}; known: {', '.join(SETS)}")
            task, build = SETS[set_name]
            examples = build(sizes[task], args.seed)
            task = task.replace("_long", "")  # pii_long: the pii task, its own size
            # The peer first: it takes seconds, so a broken peer fails the run before the
            # long job, not after it.
            presidio_out, presidio_info = run_presidio(examples)
            if args.fallback_only:
                gdr_out, gdr_info = run_fallback(task, examples, args)
            else:
                gdr_out, gdr_info = run_gdr(task, examples, args, tmp, set_name)
            result["tasks"][set_name] = {
                "gdr": {**score(examples, gdr_out, task, args.pii_policy or "direct"),
                        **gdr_info},
                "presidio_default": {**score(examples, presidio_out, task), **presidio_info},
            }
            print(f"{set_name}: done", file=sys.stderr)
            save_json(result, args.out)  # after every task: a long run keeps what it measured
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
