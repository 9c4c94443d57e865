"""Format-true fake secrets: a fake reads as the same kind of credential to a parser, a length
check, a checksum check or a person, and shares nothing with the real value but its public
structure.

- Vendor prefix kept (`ghp_`, `sk_live_`, `xoxb-`, `SG.`, `AKIA`, ...), then the body redrawn
  character by character within the value's alphabet: hex stays hex (and its case), base32
  (`A-Z2-7`, AWS key ids) stays base32, digits stay digits, letters keep their case;
  separators, `=` padding and escape sequences (`\\n` in a JSON string) stay where they are.
- GitHub tokens (`ghp_` ... 30 random + 6 checksum characters) get a valid CRC32 checksum.
- URLs (webhooks) keep scheme, host and plain path words; only their key-like segments change.
- PEM/PGP bodies are redrawn line by line (the armour is outside the span); a PGP armour
  checksum line (`=abcd`) is recomputed (CRC-24 of the decoded fake body).
"""

from __future__ import annotations

import base64
import random
import re
import string
import zlib

from gdr_beam.tasks import secret_rules
from gdr_beam.tasks.secret_rules import shannon_entropy

# Prefixes that name a key type without a separator.
_KNOWN_PREFIX = re.compile(r"^(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9]|AIza|AGE-SECRET-KEY-1|EAA[A-Z]|"
                           r"ya29\.|1//|sha256~|dp\.pt\.|dt0c01\.|SG\.|PMAK-|EZAK|EZTK|LTAI|"
                           r"AccountKey=|SharedAccessKey=|ops_eyJ|pypi-AgEIcHlwaS5vcmc|"
                           r"A3-|npm_|hf_|shp(?:at|ca|pa|ss)_|glpat-|glptt-|gldt-|dop_v1_|"
                           r"doo_v1_|dor_v1_|xox[abposre]-|xapp-|sk-(?:proj-|ant-api03-)?|"
                           r"gh[pousr]_|github_pat_|[rsp]k_(?:live|test|prod)_)")
# Vendor prefixes spelled as short words before a separator (`pscale_tkn_`, `lin_api_`).
_WORD_PREFIX = re.compile(r"^(?:[a-z][a-z0-9]{0,7}[_-]|[A-Z][A-Z0-9]{0,7}[_-]){1,3}")
# For generic findings only lowercase words ("secret_", "tskey-", "pk.", "tkn.v1_"): a
# vendor's public head more often than a password's.
_LOWER_PREFIX = re.compile(r"^(?:[a-z][a-z0-9]{0,7}[_\-.]){1,3}")
_ESCAPE = re.compile(r"\\[nrt\\/\"']")
_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_HEX_LOWER, _HEX_UPPER = set("0123456789abcdef"), set("0123456789ABCDEF")
_BASE32 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def prefix(value: str, vendor: bool) -> str:
    """The public prefix a fake keeps. Long word prefixes only for vendor-rule findings: of a
    generic password such as "correct-horse-battery" only a short head ("sk_") would stay."""
    m = _KNOWN_PREFIX.match(value)
    if m:
        return m.group()
    head = secret_rules.load().head(value)  # a head some gitleaks rule spells ("NRAK-")
    if head:
        return head
    if len(value) < 20:
        return ""
    pattern = _WORD_PREFIX if vendor else _LOWER_PREFIX
    limit = 13 if vendor else 9
    m = pattern.match(value)
    head = m.group() if m else ""
    while head and (len(head) > limit or len(value) - len(head) < 8):
        head = re.match(r"^(.*[_\-.])[^_\-.]+[_\-.]$", head)  # one segment fewer
        head = head.group(1) if head else ""
    return head


def redraw(body: str, rng: random.Random) -> str:
    """Each character redrawn from its class; the alphabet of the whole body decides the
    class (hex, base32 or plain letters/digits). Escapes and punctuation stay."""
    chars = set(_ESCAPE.sub("", body))
    letters = {c for c in chars if c.isalnum()}
    if not any(c.isalpha() for c in letters):
        pools = {}  # digits only (a PIN, a numeric key): digits stay digits
    elif len(body) >= 8 and letters <= _HEX_LOWER:
        pools = {"lower": "0123456789abcdef", "digit": "0123456789abcdef"}
    elif len(body) >= 8 and letters <= _HEX_UPPER:
        pools = {"upper": "0123456789ABCDEF", "digit": "0123456789ABCDEF"}
    elif len(body) >= 16 and letters <= _BASE32 and any(c.isdigit() for c in letters):
        pools = {"upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "digit": "234567"}
    else:
        pools = {}
    out, i = [], 0
    while i < len(body):
        esc = _ESCAPE.match(body, i)
        if esc:
            out.append(esc.group())
            i = esc.end()
            continue
        c = body[i]
        if c.isascii() and c.isdigit():
            out.append(rng.choice(pools.get("digit", string.digits)))
        elif c.isascii() and c.islower():
            out.append(rng.choice(pools.get("lower", string.ascii_lowercase)))
        elif c.isascii() and c.isupper():
            out.append(rng.choice(pools.get("upper", string.ascii_uppercase)))
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _base62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return out.rjust(width, "0")


def github_token(head: str, length: int, rng: random.Random) -> str:
    """A `gh?_` token with GitHub's checksum: 30 random base62 characters, then the CRC32 of
    those in base62 (6 characters)."""
    body = "".join(rng.choice(_B62) for _ in range(length - 6))
    return head + body + _base62(zlib.crc32(body.encode()), 6)


def github_checksum_ok(token: str) -> bool:
    body = token.split("_", 1)[-1]
    return len(body) == 36 and _base62(zlib.crc32(body[:30].encode()), 6) == body[30:]


def _crc24(data: bytes) -> int:
    """OpenPGP armour checksum (RFC 4880, 6.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armour_body(body: str, rng: random.Random) -> str:
    """A PEM/PGP body redrawn; a trailing PGP checksum line (`=` + 4 base64) recomputed."""
    lines = re.split(r"(\r?\n|\\n)", body)
    crc_at = next((i for i in range(len(lines) - 1, -1, -1)
                   if re.fullmatch(r"=[A-Za-z0-9+/]{4}", lines[i].strip())), None)
    out = [redraw(piece, rng) if i % 2 == 0 and i != crc_at else piece
           for i, piece in enumerate(lines)]
    if crc_at is not None:
        data = "".join(out[i] for i in range(0, crc_at, 2)).strip()
        try:
            decoded = base64.b64decode(data + "=" * (-len(data) % 4))
            crc = _crc24(decoded).to_bytes(3, "big")
            out[crc_at] = lines[crc_at].replace(lines[crc_at].strip(),
                                                "=" + base64.b64encode(crc).decode())
        except ValueError:
            out[crc_at] = redraw(lines[crc_at], rng)
    return "".join(out)


def _key_like(piece: str, shortest: int = 6) -> bool:
    """A URL piece that is a key rather than a word: two digits or more ("T01234ABC", not
    "webhookb2", "v2"), or a long letter run that is no run of words ("IncomingWebhook")."""
    if len(piece) < shortest:
        return False
    if sum(c.isdigit() for c in piece) >= 2:
        return True
    return len(piece) >= 16 and shannon_entropy(piece) > 3.3 and not re.fullmatch(
        r"(?:[A-Z]?[a-z]{2,}[-_]?)+", piece)


def url(value: str, rng: random.Random) -> str:
    """Scheme, the registered domain and word-like path segments stay; the password of the
    user info, a key-like user name or tenant label (`uQu9muaokn.webhook.office.com`) and
    key-like segments are redrawn."""
    m = re.match(r"^([a-z][a-z0-9+.-]*://)(?:([^/?#@]*)@)?([^/?#]*)", value)
    if not m:
        return redraw(value, rng)
    scheme, userinfo, host = m.group(1), m.group(2), m.group(3)
    if userinfo is not None:
        user, sep, password = userinfo.partition(":")
        user = redraw(user, rng) if _key_like(user, 8) else user
        userinfo = user + sep + redraw(password, rng) + "@"
    labels = host.split(".")
    if len(labels) >= 3 and (_key_like(labels[0]) or (
            len(labels[0]) >= 3 and not labels[0].islower() and not labels[0].isupper())):
        labels[0] = redraw(labels[0], rng)  # a tenant's own label, not the vendor's domain
    rest = re.split(r"([/?#&=])", value[m.end():])
    return scheme + (userinfo or "") + ".".join(labels) + "".join(
        redraw(piece, rng) if _key_like(piece) else piece for piece in rest)


def fake(value: str, category: str, rng: random.Random, vendor: bool = False) -> str:
    """A fake of `value` (a detected secret of `category`) with the same public format."""
    if category == "private_key":
        return armour_body(value, rng)
    if re.match(r"^[a-z][a-z0-9+.-]*://", value):
        return url(value, rng)
    gh = re.fullmatch(r"(gh[pousr]_)[0-9A-Za-z]{36}", value)
    if gh:
        return github_token(gh.group(1), 36, rng)
    head = prefix(value, vendor)
    return head + redraw(value[len(head):], rng)
