"""secrets and toxicity quality on data this project did not write, with a rule-based peer in
the same run.

secrets. Secret values: the `validPattern` fixtures of trufflehog's detector tests (one per
detector, ~700 vendor formats; trufflehog is not what we load: our rules are gitleaks'),
read from a local checkout (`--trufflehog_repo`, a git directory; nothing is shipped or
downloaded). Each is planted with its detector's keyword in one of nine code/config frames
(Python, JS, Go, YAML, .env, JSON, shell, Dockerfile, Terraform): the frames are OUR templates,
the values are not. Harmless look-alikes come in two groups reported apart: `real`: chunks of
real `go.sum` files (module checksums) from the gitleaks and trufflehog checkouts; `templates`:
our own frames around real commit SHAs of those checkouts, SRI `integrity` values, sha256
checksums, `source_code_hash`, image digests, UUIDs, public keys and documented placeholders.
Reported per system (gdr-beam as the job runs it: `Task.direct`, the model pass skipped; the
peer: detect-secrets alone, every value it reports replaced by a same-class fake):
  secrets_left_strict     planted values still present verbatim
  secrets_left_12char     planted values of which some 12-character substring is still present,
                          not counting windows inside public structure (a URL's scheme and
                          vendor host, its letter-only path words, a JWT header that decodes
                          to JSON: `_public_parts`)
  lookalikes_changed      harmless snippets whose output differs from the input
  format_kept             replaced values whose replacement has the same length, vendor prefix
                          (letters of one case up to a separator, or AKIA/AIza/...; values
                          without one pass), character classes, and for GitHub tokens a
                          valid CRC32 checksum
  parse_kept              snippets that parsed (Python, JSON, YAML) and still parse
  lines_unchanged         lines without a planted value that are byte-identical afterwards
  model_rewritten         share emitted as the model's rewrite (0 while secrets skips the model)
  snippets_per_s          in-process, detection + fallback

toxicity. Tweets of Davidson et al.'s human-labelled hate/offensive corpus (MIT; a local
checkout, `--davidson_repo`): `--n_hate` hate, `--n_offensive` offensive and `--n_clean`
tweets every annotator labelled neither. Judge: `alt-profanity-check` (a linear SVM shipped in
its PyPI package; NOT used by our detector; note its training data includes this corpus, so it
is a strong judge here). Systems: gdr-beam's fallback (what the job emits when the model's
rewrite fails) and a word-list filter peer (every better-profanity word deleted):
  still_flagged           outputs of toxic tweets the judge still calls offensive (p >= 0.5)
  words_kept              words of the original that neither detector flags, kept
  clean_unchanged         clean tweets emitted byte-identical
  dropped                 tweets rejected as nothing but abuse (dead letters, not outputs)

  model_pass (--model_n=N) the first N examples through the job's Refine with the embedded
                          model asked (secrets: its use_model switch forced on): how often the
                          model's own rewrite passes, and what that costs in examples/s

Dev and held-out (`--split`) are disjoint halves of every pool (a hash of the detector name,
go.sum chunk or tweet row); `--seed` draws the sample inside a half. Tune on dev only.

    python benchmarks/secrets_toxicity_quality.py --split=heldout --seed=3 \
        --out=benchmarks/results/secrets_toxicity_quality_cpu_heldout.json
"""

import argparse
import ast
import csv
import io
import json
import os
import random
import re
import string
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from results_io import save_json  # noqa: E402  (a sibling module)

_PARSER = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
_PARSER.add_argument("--tasks", default="secrets,toxicity")
_PARSER.add_argument("--trufflehog_repo", default="/work/.mirror/trufflesecurity+trufflehog/repo")
_PARSER.add_argument("--gitleaks_repo", default="/work/.mirror/gitleaks+gitleaks/repo")
_PARSER.add_argument("--davidson_repo",
                     default="/work/.mirror/t-davidson+hate-speech-and-offensive-language/repo")
_PARSER.add_argument("--n_secrets", type=int, default=200)
_PARSER.add_argument("--n_hate", type=int, default=50)
_PARSER.add_argument("--n_offensive", type=int, default=150)
_PARSER.add_argument("--n_clean", type=int, default=50)
_PARSER.add_argument("--split", choices=("dev", "heldout"), default="dev",
                     help="Which half of each source pool: the halves are disjoint (by a hash "
                          "of the detector name / tweet row), so tuning on dev never sees "
                          "held-out values.")
_PARSER.add_argument("--seed", type=int, default=0)
_PARSER.add_argument("--out", default=None)
_PARSER.add_argument("--model_n", type=int, default=0,
                     help="Also run the first N examples of each set through the job's Refine "
                          "with the embedded model asked (secrets: use_model forced on), to "
                          "measure how often the model's rewrite passes.")
_PARSER.add_argument("--max_new_tokens", type=int, default=256)
_PARSER.add_argument("--adapter", default=None,
                     help="LoRA adapter for the --model_n pass (a directory, shipped:TASK; "
                          "default: none, the base embedded model).")
_PARSER.add_argument("--export_toxicity", default=None,
                     help="Write the toxicity sample (--split, --seed, --n_*) as JSONL of "
                          "{id, label, text} and stop: training texts for "
                          "`pipelines.make_adapt_data --input` (use the dev half).")


def _git(repo: str, *args) -> str:
    return subprocess.run(["git", "--git-dir", repo, *args], check=True, capture_output=True,
                          text=True).stdout


def in_split(key: str, split: str) -> bool:
    """Whether a pool item (named by a stable key) belongs to `split`: a hash halves every
    pool, so dev and held-out never share a value, a go.sum chunk or a tweet."""
    import hashlib
    return (hashlib.sha1(key.encode()).digest()[0] % 2 == 0) == (split == "dev")


def _source(repo: str) -> str:
    return f"{os.path.basename(os.path.dirname(repo))}@{_git(repo, 'rev-parse', 'HEAD').strip()}"


# --- secrets data --------------------------------------------------------------------------------

_VALID = re.compile(r"""validPattern\w*\s*(?::=|=)\s*(?:"([^"\n]{16,300})"|`([^`\n]{16,300})`)""")
_KEYWORD = re.compile(r"""keyword\s*(?::=|=)\s*"([^"\n]+)\"""")


def trufflehog_values(repo: str) -> list:
    """(detector, keyword, value) from each detector test's first single-token validPattern."""
    files = [f for f in _git(repo, "ls-tree", "-r", "--name-only", "HEAD", "pkg/detectors").split()
             if f.endswith("_test.go") and "integration" not in f]
    out = []
    for path in sorted(files):
        src = _git(repo, "show", f"HEAD:{path}")
        m = _VALID.search(src)
        if not m:
            continue
        value = m.group(1) or m.group(2)
        if re.search(r"\s|%|\\", value) or not re.search(r"[0-9]", value):
            continue  # formatted strings, multi-part fixtures, words
        detector = path.split("/")[2]
        k = _KEYWORD.search(src)
        out.append((detector, (k.group(1) if k else detector).replace(" ", "_"), value))
    return out


FRAMES = {  # OUR templates; {k} the detector keyword, {v} the value
    "python": 'import os\n\n{K}_KEY = "{v}"\nTIMEOUT = 30\n\n\ndef client():\n    return Client(api_key={K}_KEY, timeout=TIMEOUT)\n',
    "js": "const config = {{\n  region: 'us-east-1',\n  {k}Key: '{v}',\n  retries: 3,\n}};\nmodule.exports = config;\n",
    "go": 'package main\n\nconst {k}Token = "{v}"\n\nfunc main() {{\n\tprintln(len({k}Token))\n}}\n',
    "yaml": "service:\n  name: billing\n  {k}:\n    api_key: {v}\n    timeout: 30\n",
    "env": "APP_ENV=production\nPORT=8080\n{K}_API_KEY={v}\nLOG_LEVEL=info\n",
    "json": '{{\n  "name": "worker",\n  "{k}_token": "{v}",\n  "replicas": 2\n}}\n',
    "shell": '#!/bin/sh\nset -e\nexport {K}_TOKEN="{v}"\ncurl -s https://example.org/health\n',
    "dockerfile": 'FROM python:3.11-slim\nWORKDIR /app\nENV {K}_SECRET="{v}"\nCOPY . .\nCMD ["python", "main.py"]\n',
    "terraform": 'provider "aws" {{\n  region = "us-east-1"\n}}\n\nvariable "{k}_api_key" {{\n  default = "{v}"\n}}\n',
}


def secrets_set(args) -> tuple:
    rng = random.Random(args.seed)
    values = [v for v in trufflehog_values(args.trufflehog_repo) if in_split(v[0], args.split)]
    rng.shuffle(values)
    positives = []
    for i, (detector, keyword, value) in enumerate(values[:args.n_secrets]):
        frame = list(FRAMES)[i % len(FRAMES)]
        k = re.sub(r"\W", "_", keyword.lower())
        text = FRAMES[frame].format(k=k, K=k.upper(), v=value)
        positives.append({"id": f"{detector}-{frame}", "frame": frame, "text": text,
                          "values": [value]})
    real, templates = [], []
    for repo in (args.gitleaks_repo, args.trufflehog_repo):
        lines = _git(repo, "show", "HEAD:go.sum").splitlines()
        for j in range(0, min(len(lines), 120), 6):
            if not in_split(f"{repo}:go.sum:{j}", args.split):
                continue
            real.append({"id": f"gosum-{os.path.basename(os.path.dirname(repo))}-{j}",
                         "frame": "go.sum", "text": "\n".join(lines[j:j + 6]) + "\n"})
    shas = _git(args.gitleaks_repo, "log", "--format=%H", "-n", "6").split()
    digest = lambda n: "".join(rng.choice("0123456789abcdef") for _ in range(n))  # noqa: E731
    b64 = lambda n: "".join(rng.choice(string.ascii_letters + string.digits + "+/")  # noqa: E731
                            for _ in range(n))
    look = [
        f"repos:\n  - repo: https://github.com/gitleaks/gitleaks\n    rev: {shas[0]}\n    hooks:\n      - id: gitleaks\n",
        f"git checkout {shas[1]}\ngit log -1 {shas[2]}\n",
        f'{{\n  "node_modules/lodash": {{\n    "version": "4.17.21",\n    "integrity": "sha512-{b64(86)}=="\n  }}\n}}\n',
        f"{digest(64)}  dist/app-1.4.2.tar.gz\n{digest(64)}  dist/app-1.4.2.whl\n",
        f'resource "aws_lambda_function" "fn" {{\n  filename         = "fn.zip"\n  source_code_hash = "{b64(43)}="\n}}\n',
        f"FROM python@sha256:{digest(64)}\nRUN pip install -r requirements.txt\n",
        f'TEST_RUN_ID = "{random.Random(1).randbytes(16).hex()[:8]}-4f1a-4b2c-9d3e-{digest(12)}"\nassert run(TEST_RUN_ID)\n',
        'DATABASE_URL = "postgres://user:password@localhost:5432/app"\n',
        'OPENAI_API_KEY = "YOUR_API_KEY"\nADMIN_PASSWORD = "changeme"\n',
        'aws_access_key_id = "AKIAIOSFODNN7EXAMPLE"\n',
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl deploy@ci\n",
        f'{{"keys": [{{"kty": "RSA", "e": "AQAB", "kid": "k1", "n": "{b64(342).replace("+", "-").replace("/", "_")}"}}]}}\n',
        f"-----BEGIN CERTIFICATE-----\n{b64(64)}\n{b64(64)}\n-----END CERTIFICATE-----\n",
        f'checksum = "sha256:{digest(64)}"\nmd5 = "{digest(32)}"\n',
    ]
    for j, text in enumerate(look):
        templates.append({"id": f"lookalike-{j}", "frame": "template", "text": text})
    return positives, real, templates


# --- secrets metrics -----------------------------------------------------------------------------

def _prefix(value: str) -> str:
    """A value's vendor prefix: a word of one case ending in a separator, then any lowercase
    words ("sk_live_", "xoxb-", "SG.", "tkn.v1_"), or a known fixed head (AKIA, AIza)."""
    m = re.match(r"^(?:AKIA|ASIA|AIza|EAA[A-Z]|ya29\.)|^(?:[a-z]{2,8}[a-z0-9]{0,3}[_\-.]|"
                 r"[A-Z]{2,8}[A-Z0-9]{0,3}[_\-.])(?:[a-z][a-z0-9]{1,7}[_\-.])*", value)
    return m.group() if m else ""


def _public_parts(value: str) -> list:
    """Spans of a value that are the same for every user of its vendor, so a fake keeps them
    and a 12-character window inside one is no leak: a URL's scheme and registered host (not
    user info, not a tenant's first label of a 3+ label host unless a lowercase word) and its path words (letters,
    at most one trailing digit: "services", "IncomingWebhook", "webhookb2"); a JWT's header when it decodes to a JSON object."""
    import base64
    spans = []
    url = re.match(r"[a-z][a-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#]*)", value)
    if url:
        spans.append((0, value.index("://") + 3))
        host, start = url.group(1), url.start(1)
        labels = host.split(".")
        # a 3+ label host's first label is a tenant's ("efT.tines.com") unless it is a
        # lowercase word ("hooks.slack.com")
        tenant = len(labels) >= 3 and not (labels[0].isalpha() and labels[0].islower())
        skip = len(labels[0]) if tenant else 0
        spans.append((start + skip - (value[start - 1] == "@" and not skip), url.end(1)))
        for m in re.finditer(r"[^/?#&=]+", value[url.end():]):
            if re.fullmatch(r"[A-Za-z]{1,15}[0-9]?", m.group()):
                spans.append((url.end() + m.start() - 1, url.end() + m.end() + 1))
    jwt = re.match(r"(eyJ[A-Za-z0-9_-]+)\.", value)
    if jwt:
        try:
            seg = jwt.group(1)
            if isinstance(json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))), dict):
                spans.append((0, jwt.end()))
        except ValueError:
            pass
    merged = []  # touching spans are one ("tines.com" + "/webhook/")
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _left_12(value: str, text: str) -> bool:
    """Whether a 12-character window of the value's secret part is still in the text."""
    public = _public_parts(value)
    return any(value[i:i + 12] in text for i in range(max(1, len(value) - 11))
               if not any(a <= i and i + 12 <= b for a, b in public))


def _classes(value: str) -> set:
    out = set()
    for c in value:
        out.add("d" if c.isdigit() else "l" if c.islower() else "u" if c.isupper() else c)
    return out


def _format_kept(old: str, new: str) -> dict:
    from gdr_beam.tasks.secret_fakes import github_checksum_ok
    ok = {"length": len(old) == len(new), "prefix": new.startswith(_prefix(old)),
          "alphabet": _classes(new) <= _classes(old) | {"d"} and (
              not re.fullmatch(r"[0-9a-f]+", old) or bool(re.fullmatch(r"[0-9a-f]+", new)))}
    if re.fullmatch(r"gh[pousr]_[0-9A-Za-z]{36}", old) and github_checksum_ok(old):
        ok["checksum"] = github_checksum_ok(new)
    return ok


def _parses(text: str, frame: str):
    try:
        if frame == "python":
            ast.parse(text)
        elif frame == "json":
            json.loads(text)
        elif frame == "yaml":
            import yaml
            yaml.safe_load(text)
        else:
            return None
        return True
    except Exception:  # noqa: BLE001 - any parse failure
        return False


def detect_secrets_peer(text: str, rng: random.Random) -> tuple:
    """detect-secrets alone: every value it reports on a line replaced by a same-class fake."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings
    out, changes = [], []
    with default_settings():
        for line in text.splitlines(keepends=True):
            for secret in scan_line(line):
                value = secret.secret_value or ""
                if len(value) >= 6 and value in line:
                    new = "".join(rng.choice(string.digits) if c.isdigit() else
                                  rng.choice(string.ascii_lowercase) if c.islower() else
                                  rng.choice(string.ascii_uppercase) if c.isupper() else c
                                  for c in value)
                    line = line.replace(value, new)
                    changes.append((value, new))
            out.append(line)
    return "".join(out), changes


def run_secrets(args) -> dict:
    from gdr_beam.tasks import get_task
    task = get_task("secrets")
    positives, real, templates = secrets_set(args)
    systems = {
        "gdr-beam": lambda ex: _gdr(task, ex),
        "detect-secrets alone": lambda ex: detect_secrets_peer(
            ex["text"], random.Random(ex["id"])) + (False,),
    }
    task.direct("warm-up", positives[0]["text"], args.seed)  # rule compile, plugin import
    result = {}
    for name, system in systems.items():
        t0 = time.perf_counter()
        outs = [system(ex) for ex in positives]
        elapsed = time.perf_counter() - t0
        left = left12 = n_values = 0
        fmt = {"length": 0, "prefix": 0, "alphabet": 0, "checksum": 0, "all": 0}
        n_replaced = n_checksum = 0
        parsed = still = lines_total = lines_same = rewritten = 0
        per_frame, left_ids, format_misses = {}, [], []
        for ex, (text, changes, by_model) in zip(positives, outs):
            rewritten += by_model
            for value in ex["values"]:
                n_values += 1
                strict = value in text
                sub = _left_12(value, text)
                left += strict
                left12 += sub
                if sub:
                    left_ids.append(ex["id"] + ("" if strict else " (12-char part)"))
                per_frame.setdefault(ex["frame"], [0, 0])
                per_frame[ex["frame"]][0] += 1
                per_frame[ex["frame"]][1] += strict
                news = [new for old, new in changes if old == value]
                if news and not strict:
                    n_replaced += 1
                    ok = _format_kept(value, news[0])
                    for k, v in ok.items():
                        fmt[k] += v
                    n_checksum += "checksum" in ok
                    fmt["all"] += all(ok.values())
                    if not all(ok.values()):
                        format_misses.append(f"{ex['id']}: " + ",".join(
                            k for k, v in ok.items() if not v))
            p0 = _parses(ex["text"], ex["frame"])
            if p0:
                parsed += 1
                still += bool(_parses(text, ex["frame"]))
            old_lines, new_lines = ex["text"].splitlines(), text.splitlines()
            for i, line in enumerate(old_lines):
                if not any(v in line for v in ex["values"]):
                    lines_total += 1
                    lines_same += i < len(new_lines) and new_lines[i] == line
        look = {}
        for group, items in (("real", real), ("templates", templates)):
            changed = [ex["id"] for ex in items if system(ex)[0] != ex["text"]]
            look[group] = {"n": len(items), "changed": len(changed),
                           "changed_share": round(len(changed) / max(len(items), 1), 4),
                           "changed_ids": changed}
        result[name] = {
            "n_snippets": len(positives), "n_values": n_values,
            "secrets_left_strict": round(left / n_values, 4),
            "secrets_left_12char": round(left12 / n_values, 4),
            "secrets_left_by_frame": {f: round(b / a, 4) for f, (a, b) in per_frame.items()},
            "secrets_left_ids": left_ids,
            "lookalikes": look,
            "format_kept": {k: round(v / max(n_checksum if k == "checksum" else n_replaced, 1), 4)
                            for k, v in fmt.items()} | {"n_replaced": n_replaced,
                                                        "n_checksum": n_checksum,
                                                        "misses": format_misses},
            "parse_kept": f"{still}/{parsed}",
            "lines_unchanged": round(lines_same / max(lines_total, 1), 4),
            "model_rewritten": round(rewritten / len(positives), 4),
            "snippets_per_s": round(len(positives) / elapsed, 1),
        }
    return {"data": {"secret_values": _source(args.trufflehog_repo) + " pkg/detectors/*_test.go "
                     "validPattern (frames: our templates)",
                     "lookalikes_real": [_source(args.gitleaks_repo) + " go.sum",
                                         _source(args.trufflehog_repo) + " go.sum"],
                     "lookalikes_templates": "our templates (real commit SHAs of gitleaks)"},
            "use_model": task.use_model, "systems": result}


def _gdr(task, ex) -> tuple:
    check = task.direct(ex["id"], ex["text"], 0) or task.fallback(ex["id"], ex["text"], 0)
    text = ex["text"] if check.verdict == "rejected" else check.text
    changes = [(ex["text"][c["start"]:c["end"]], c["replacement"]) for c in check.changes]
    return text, changes, check.verdict == "rewritten"


# --- toxicity ------------------------------------------------------------------------------------

def toxicity_set(args) -> list:
    raw = _git(args.davidson_repo, "show", "HEAD:data/labeled_data.csv")
    rows = [r for r in csv.DictReader(io.StringIO(raw)) if in_split("row" + r[""], args.split)]
    rng = random.Random(args.seed)
    rng.shuffle(rows)
    hate = [r for r in rows if r["class"] == "0"][:args.n_hate]
    offensive = [r for r in rows if r["class"] == "1"][:args.n_offensive]
    clean = [r for r in rows if r["class"] == "2" and r["neither"] == r["count"]][:args.n_clean]
    return [{"id": f"{label}-{r['']}", "label": label, "text": r["tweet"]}
            for label, group in (("hate", hate), ("offensive", offensive), ("clean", clean))
            for r in group]


def _word_list_peer(ex) -> str:
    from better_profanity import profanity
    profanity.load_censor_words()
    censored = profanity.censor(ex["text"], "\x00")
    return re.sub(r"[ \t]{2,}", " ", re.sub(r"\S*\x00+\S*", "", censored)).strip()


def run_toxicity(args) -> dict:
    from profanity_check import predict_prob
    from better_profanity import profanity
    from gdr_beam.tasks import get_task
    from gdr_beam.tasks.base import words
    task = get_task("toxicity")
    examples = toxicity_set(args)
    profanity.load_censor_words()
    base = predict_prob([ex["text"] for ex in examples])
    result = {"judge_flags_originals": {
        label: round(float(sum(p >= 0.5 for p, ex in zip(base, examples) if ex["label"] == label))
                     / max(1, sum(ex["label"] == label for ex in examples)), 4)
        for label in ("hate", "offensive", "clean")}}

    def gdr(ex):
        check = task.fallback(ex["id"], ex["text"], 0)
        return None if check.verdict == "rejected" else check.text

    task.spans("warm up")
    for name, system in (("gdr-beam fallback", gdr), ("word-list filter", _word_list_peer)):
        t0 = time.perf_counter()
        outs = [system(ex) for ex in examples]
        elapsed = time.perf_counter() - t0
        kept_idx = [i for i, o in enumerate(outs) if o is not None]
        probs = dict(zip(kept_idx, predict_prob([outs[i] for i in kept_idx])))
        stats = {}
        for label in ("hate", "offensive"):
            idx = [i for i in kept_idx if examples[i]["label"] == label]
            stats[f"still_flagged_{label}"] = round(
                sum(probs[i] >= 0.5 for i in idx) / max(len(idx), 1), 4)
        toxic_idx = [i for i in kept_idx if examples[i]["label"] != "clean"]
        stats["still_flagged_toxic"] = round(
            sum(probs[i] >= 0.5 for i in toxic_idx) / max(len(toxic_idx), 1), 4)
        kept = total = 0
        for i in kept_idx:
            flagged = {s.value.lower() for s in task.spans(examples[i]["text"])}
            others = [w for w in words(examples[i]["text"]) if w not in flagged
                      and not profanity.contains_profanity(w)]
            present = set(words(outs[i]))
            total += len(others)
            kept += sum(w in present for w in others)
        clean_idx = [i for i, ex in enumerate(examples) if ex["label"] == "clean"]
        stats.update({
            "words_kept": round(kept / max(total, 1), 4),
            "clean_unchanged": round(sum(outs[i] == examples[i]["text"] for i in clean_idx)
                                     / max(len(clean_idx), 1), 4),
            "dropped": len(examples) - len(kept_idx),
            "tweets_per_s": round(len(examples) / elapsed, 1),
            "samples": [{"before": examples[i]["text"], "after": outs[i]}
                        for i in range(0, len(examples), max(1, len(examples) // 8))][:8]})
        result[name] = stats
    return {"data": _source(args.davidson_repo) + " data/labeled_data.csv",
            "n": {k: sum(ex["label"] == k for ex in examples) for k in ("hate", "offensive",
                                                                         "clean")},
            "judge": "alt-profanity-check predict_prob >= 0.5", "systems": result}


def model_share(task_name: str, examples: list, args) -> dict:
    """The job's Refine on `examples` with the model asked: verdict counts, examples/s, and
    the refined texts by id (`outputs`, for judging)."""
    import glob
    import tempfile
    import apache_beam as beam
    from gdr_beam.beam.handler import JaxModelHandler
    from gdr_beam.beam.refine import Refine
    from gdr_beam.tasks import base, get_task
    task = get_task(task_name)
    if not task.use_model:  # measure what the switch saves: the same task, model asked
        name = f"{task_name}_with_model"
        if name not in base.task_names():
            base.register_task(name, type(f"{type(task).__name__}WithModel", (type(task),),
                                          {"use_model": True, "name": name}))
        task_name = name
    records = [{"id": ex["id"], "text": ex["text"]} for ex in examples]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with beam.Pipeline() as p:
            refined, dead = p | beam.Create(records) | Refine(
                task=task_name, max_new_tokens=args.max_new_tokens, seed=args.seed,
                model_handler=JaxModelHandler(None, adapter=args.adapter,
                                              max_new_tokens=args.max_new_tokens,
                                              temperature=0.7))
            refined | "v" >> beam.Map(lambda r: json.dumps(
                {"id": r["id"], "verdict": r["verdict"], "text": r["text"]})) \
                | "w" >> beam.io.WriteToText(os.path.join(tmp, "v"))
            dead | "d" >> beam.Map(lambda d: "dead:" + d.reason) | "wd" >> beam.io.WriteToText(
                os.path.join(tmp, "d"))
        elapsed = time.perf_counter() - t0
        lines = [line.strip() for path in glob.glob(os.path.join(tmp, "*-0*"))
                 for line in open(path, encoding="utf-8") if line.strip()]
    rows = [json.loads(line) for line in lines if not line.startswith("dead:")]
    verdicts = [r["verdict"] for r in rows] + [line for line in lines if line.startswith("dead:")]
    counts = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    return {"n": len(records), "verdicts": counts,
            "model_rewritten": round(counts.get("rewritten", 0) / max(len(records), 1), 4),
            "examples_per_s": round(len(records) / elapsed, 3),
            "settings": f"embedded SmolLM2-135M, adapter {args.adapter or 'none'}, T=0.7, "
                        f"max_retries=1, max_new_tokens={args.max_new_tokens}",
            "outputs": {r["id"]: (r["verdict"], r["text"]) for r in rows}}


def judge_model_pass(examples: list, share: dict) -> dict:
    """The judge on the model pass's outputs (toxicity): still flagged, overall and among the
    model's own rewrites, with a few of those rewrites to read."""
    from profanity_check import predict_prob
    outputs = share.pop("outputs")
    done = [ex for ex in examples if ex["id"] in outputs]
    probs = predict_prob([outputs[ex["id"]][1] for ex in done]) if done else []
    flagged = {ex["id"]: p >= 0.5 for ex, p in zip(done, probs)}
    model = [ex for ex in done if outputs[ex["id"]][0] == "rewritten"]
    share.update({
        "still_flagged_toxic": round(sum(flagged.values()) / max(len(done), 1), 4),
        "still_flagged_model_rewrites": round(
            sum(flagged[ex["id"]] for ex in model) / max(len(model), 1), 4),
        "model_samples": [{"before": ex["text"], "after": outputs[ex["id"]][1]}
                          for ex in model[:10]]})
    return share


def main():
    args = _PARSER.parse_args()
    if args.export_toxicity:
        rows = toxicity_set(args)
        with open(args.export_toxicity, "w", encoding="utf-8") as f:
            for ex in rows:
                f.write(json.dumps(ex, ensure_ascii=False) + "\n")
        print(json.dumps({"exported": len(rows), "split": args.split, "seed": args.seed,
                          "to": args.export_toxicity}))
        return
    out = {"machine": "shared 2-core CPU (other agents running)", "split": args.split,
           "seed": args.seed}
    tasks = args.tasks.split(",")
    if "secrets" in tasks:
        out["secrets"] = run_secrets(args)
        if args.model_n:
            out["secrets"]["model_pass"] = model_share(
                "secrets", secrets_set(args)[0][:args.model_n], args)
            out["secrets"]["model_pass"].pop("outputs")
    if "toxicity" in tasks:
        out["toxicity"] = run_toxicity(args)
        if args.model_n:
            toxic = [ex for ex in toxicity_set(args) if ex["label"] != "clean"]
            out["toxicity"]["model_pass"] = judge_model_pass(
                toxic[:args.model_n], model_share("toxicity", toxic[:args.model_n], args))
    print(json.dumps(out, indent=2))
    save_json(out, args.out)


if __name__ == "__main__":
    main()
