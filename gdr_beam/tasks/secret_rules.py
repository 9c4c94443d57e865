"""gitleaks' maintained secret rules, loaded as data (`data/gitleaks.toml`, MIT; source and
version in `data/README.md`) and run the way gitleaks runs them.

A rule is a regex (Go RE2 syntax) with keywords, an optional entropy limit, an optional secret
group and allowlists. As in gitleaks: a rule runs only when one of its keywords occurs in the
text (case-insensitive), the secret is the rule's secret group or else its first non-empty
group (or the whole match), a secret whose Shannon entropy is <= the rule's limit is dropped,
and the global and per-rule allowlists (regexes over the secret, match or line; stopwords;
AND/OR conditions) drop known non-secrets. Path-only rules and path/commit allowlists need a
file path we do not have and are skipped.

RE2 -> Python: a flag group that is not at the start (`p8e-(?i)[a-z0-9]{32}`) becomes a
scoped group up to the end of its enclosing group, POSIX classes (`[[:alnum:]]`) are spelled
out, `\\z` is `\\Z`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from typing import Optional

try:  # Python 3.11+
    import tomllib
except ImportError:  # pragma: no cover - 3.10
    import tomli as tomllib

RULES_PATH = os.path.join(os.path.dirname(__file__), "data", "gitleaks.toml")

_POSIX = {"alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "digit": "0-9", "xdigit": "0-9a-fA-F",
          "lower": "a-z", "upper": "A-Z", "space": r"\s", "word": r"\w",
          "punct": r"!-/:-@\[-`{-~"}


def _end_of_group(pattern: str, pos: int) -> int:
    """Index of the `)` closing the group that contains `pos` (len(pattern) at top level)."""
    depth, i, in_class = 0, pos, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "]":  # a literal ] first in a class
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return len(pattern)


def re2_to_python(pattern: str) -> str:
    """A gitleaks (RE2) regex in Python's `re` syntax (see the module doc)."""
    pattern = re.sub(r"\[:(\w+):\]", lambda m: _POSIX[m.group(1)], pattern)
    pattern = pattern.replace(r"\z", r"\Z")
    head = re.match(r"\(\?([a-z]+)\)", pattern)
    start = head.end() if head else 0
    while True:
        m = re.compile(r"(?<!\\)\(\?([a-z]+)\)").search(pattern, start)
        if m is None:
            return pattern
        flags = m.group(1)
        if head and set(flags) <= set(head.group(1)):  # already global: drop the repeat
            pattern = pattern[:m.start()] + pattern[m.end():]
            continue
        end = _end_of_group(pattern, m.end())
        pattern = (pattern[:m.start()] + f"(?{flags}:" + pattern[m.end():end] + ")"
                   + pattern[end:])
        start = m.start()


def shannon_entropy(value: str) -> float:
    if not value:
        return 0.0
    counts = {c: value.count(c) for c in set(value)}
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


@dataclasses.dataclass(frozen=True)
class Allowlist:
    regexes: tuple = ()
    stopwords: tuple = ()
    target: str = "secret"  # secret | match | line
    condition: str = "OR"

    def allows(self, secret: str, match: str, line: str) -> bool:
        if not self.regexes and not self.stopwords:
            return False  # a path/commit-only allowlist: nothing we can check
        target = {"match": match, "line": line}.get(self.target, secret)
        by_regex = any(r.search(target) for r in self.regexes)
        lowered = secret.lower()
        by_stopword = any(w in lowered for w in self.stopwords)
        if self.condition.upper() == "AND":
            checks = ([by_regex] if self.regexes else []) + ([by_stopword] if self.stopwords
                                                             else [])
            return all(checks)
        return by_regex or by_stopword


@dataclasses.dataclass(frozen=True)
class Rule:
    id: str
    regex: re.Pattern
    keywords: tuple
    entropy: float = 0.0
    secret_group: int = 0
    allowlists: tuple = ()


@dataclasses.dataclass(frozen=True)
class Finding:
    start: int  # the secret's offsets in the scanned text
    end: int
    rule_id: str
    secret: str
    match_start: int  # the whole match (keyword, assignment, secret)
    match_end: int


def _allowlist(raw: dict) -> Allowlist:
    return Allowlist(
        regexes=tuple(re.compile(re2_to_python(r)) for r in raw.get("regexes", ())),
        stopwords=tuple(w.lower() for w in raw.get("stopwords", ())),
        target=raw.get("regexTarget", "secret"), condition=raw.get("condition", "OR"))


@dataclasses.dataclass(frozen=True)
class RuleSet:
    rules: tuple
    allowlists: tuple  # global
    # Vendor heads the rules' secrets begin with ("NRAK-", "sntrys_", "glpat-"), longest
    # first: a fake keeps them (public structure), even where a generic rule found the value.
    heads: tuple = ()

    def rule(self, rule_id: str) -> Optional[Rule]:
        return next((r for r in self.rules if r.id == rule_id), None)

    def allowed(self, rule: Rule, secret: str, match: str, line: str) -> bool:
        """Whether the global or the rule's own allowlists let `secret` through."""
        return any(a.allows(secret, match, line) for a in self.allowlists + rule.allowlists)

    def head(self, value: str) -> str:
        """The longest vendor head `value` starts with, as the value spells it ('' if none)."""
        lowered = value.lower()
        for head in self.heads:
            if lowered.startswith(head.lower()) and len(value) - len(head) >= 8:
                return value[:len(head)]
        return ""

    def scan(self, text: str) -> list[Finding]:
        lowered = text.lower()
        out = []
        for rule in self.rules:
            if rule.keywords and not any(k in lowered for k in rule.keywords):
                continue
            for m in rule.regex.finditer(text):
                group = rule.secret_group
                if not group:
                    group = next((i for i in range(1, (rule.regex.groups or 0) + 1)
                                  if m.group(i)), 0)
                start, end = m.span(group)
                secret = m.group(group)
                if not secret or (rule.entropy and shannon_entropy(secret) <= rule.entropy):
                    continue
                line_start = text.rfind("\n", 0, start) + 1
                line_end = text.find("\n", end)
                line = text[line_start:line_end if line_end >= 0 else len(text)]
                if self.allowed(rule, secret, m.group(), line):
                    continue
                out.append(Finding(start, end, rule.id, secret, m.start(), m.end()))
        return out


# Leading literals of the rules' secrets that are no vendor head (a URL scheme, a command).
_NOT_A_HEAD = {"https", "http", "curl", "kind", "pat", "api-", "-----begin"}


def _literal_heads(pattern: str) -> list[str]:
    """Literal texts a secret of this regex starts with: the pattern's own start and the start
    of each capturing group (`(NRII-[a-z0-9-]{32})` -> "NRII-"), escapes resolved; only heads
    that end in a separator, or are letters and digits (not all lowercase) of 4+ characters."""
    out = []
    starts = [0] + [m.end() for m in re.finditer(r"(?<!\\)\((?!\?)", pattern)]
    for start in starts:
        q = re.sub(r"^(?:\(\?[a-z]+\)|\\b|\(\?:|\()*", "", pattern[start:])
        m = re.match(r"(?:[A-Za-z0-9_-]|\\[.-])+", q)
        if not m:
            continue
        lit = m.group().replace("\\", "")
        nxt = q[m.end():m.end() + 1]
        if nxt in "?*{" and nxt:  # the last character is optional or repeated
            lit = lit[:-1]
        if lit.lower() in _NOT_A_HEAD or not re.search("[A-Za-z]", lit):
            continue
        if len(set(lit)) < 3:
            continue  # "AAAAAAAAAA": padding, not a head
        if (len(lit) >= 3 and lit[-1] in "_-.") or (
                len(lit) >= 4 and lit.isalnum() and not lit.islower()):
            out.append(lit)  # "AIza", "LTAI"; not a lowercase word ("live", "test")
    return out


@functools.lru_cache(maxsize=None)
def load(path: Optional[str] = None) -> RuleSet:
    """The rule set in `path` (default: the shipped gitleaks config). Rules without a regex
    (path-only) are skipped; a regex that does not compile raises, so a new config that our
    converter cannot read fails loudly in the tests rather than silently losing rules."""
    with open(path or RULES_PATH, "rb") as f:
        config = tomllib.load(f)
    rules, heads = [], set()
    for raw in config.get("rules", ()):
        if "regex" not in raw:
            continue
        heads.update(_literal_heads(raw["regex"]))
        rules.append(Rule(
            id=raw["id"], regex=re.compile(re2_to_python(raw["regex"])),
            keywords=tuple(k.lower() for k in raw.get("keywords", ())),
            entropy=float(raw.get("entropy", 0.0)), secret_group=int(raw.get("secretGroup", 0)),
            allowlists=tuple(_allowlist(a) for a in raw.get("allowlists", ()))))
    glob = config.get("allowlist")
    allowlists = (_allowlist(glob),) if glob else ()
    allowlists += tuple(_allowlist(a) for a in config.get("allowlists", ()))
    return RuleSet(tuple(rules), allowlists,
                   tuple(sorted(heads, key=lambda h: (-len(h), h))))
