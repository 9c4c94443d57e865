"""Fake values of the same kind and format as a detected value (the fallback's replacements)."""

from __future__ import annotations

import functools
import random
import re
import threading
from typing import Callable

from gdr_beam.tasks.pii.checks import luhn_ok
from gdr_beam.tasks.pii.national_ids import fake_national_id


@functools.lru_cache(maxsize=None)
def _faker(locale: str):
    from faker import Faker  # pylint: disable=import-outside-toplevel
    return Faker(locale)


_FAKER_LOCK = threading.Lock()


def with_faker(rng: random.Random, make: Callable, locale: str = "en_US"):
    """Faker (of `locale`) seeded from rng. Faker's seed is per instance, so concurrent DoFn
    threads take turns on the instances."""
    with _FAKER_LOCK:
        fake = _faker(locale or "en_US")
        fake.seed_instance(rng.getrandbits(64))
        return make(fake)


def _same_shape_digits(value: str, rng: random.Random) -> str:
    out = [str(rng.randrange(10)) if c.isdigit() else c for c in value]
    if out and out[0] == "0" and value[0] != "0":
        out[0] = str(rng.randrange(1, 10))
    return "".join(out)


def _fix_last_digit(value: str, ok: Callable[[str], bool]) -> str:
    last = max(i for i, c in enumerate(value) if c.isdigit())
    for d in "0123456789":
        candidate = value[:last] + d + value[last + 1:]
        if ok(candidate):
            return candidate
    return value


# A national trunk prefix after a country code: "+44 (0)20 ...", "+49(0) 9150 ...".
_TRUNK = re.compile(r"[ \t]*\(0\)[ \t]*")


def _phone_country_part(value: str) -> str:
    """The head of a phone number that says its country and is not personal: a calling code
    ("+44", "+1", "+353": calling codes are prefix-free, so at most one length is one),
    with a "(0)" trunk prefix after it; or a national number's leading trunk 0. Kept, so a UK
    number's fake is a UK number ("+4420 7496 0150" once became "+6420 ...")."""
    import phonenumbers  # pylint: disable=import-outside-toplevel
    if value.startswith("0"):
        return "0"
    digits = re.match(r"\+(\d{1,3})", value)
    if not digits:
        return ""
    for n in range(1, len(digits.group(1)) + 1):
        if int(digits.group(1)[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            trunk = _TRUNK.match(value, 1 + n)
            return value[:trunk.end() if trunk else 1 + n]
    return ""


def _fake_date(value: str, rng: random.Random) -> str:
    """A date of birth in the same format as `value`."""
    year, month, day = rng.randrange(1950, 2004), rng.randrange(1, 13), rng.randrange(1, 29)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return f"{year}-{month:02d}-{day:02d}"
    m = re.fullmatch(r"(\d{1,2})([/.])(\d{1,2})[/.](\d{2,4})", value)
    if m:
        y = str(year) if len(m.group(4)) == 4 else f"{year % 100:02d}"
        return f"{month:02d}{m.group(2)}{day:02d}{m.group(2)}{y}"
    names = ["January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December"]
    if value[0].isdigit():
        return f"{day} {names[month - 1]} {year}"
    return f"{names[month - 1]} {day}, {year}"


def _address_locale(value: str) -> str:
    """Faker locale of an address's style: its street-type word's country, en_GB for a UK
    postcode, '' (en_US) otherwise."""
    from gdr_beam.tasks.pii.addresses import address_spans, locale_of  # pylint: disable=import-outside-toplevel
    found = address_spans(value)
    locale = locale_of(found[0][2]) if found else ""
    if not locale and re.search(r"\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b", value):
        locale = "en_GB"
    return locale


def _one_line(address: str) -> str:
    return address.replace("\n", ", ")


def _with_faker_user(rng: random.Random) -> str:
    return with_faker(rng, lambda f: f.user_name())


def _fake_url(value: str, rng: random.Random) -> str:
    """The same scheme, "www." and path shape on a fake domain; a profile path gets a fake
    user name."""
    m = re.match(r"(?i)((?:https?://)?(?:www\.)?)([\w-]+(?:\.[\w-]+)+)(/.*)?$", value)
    if not m:
        return with_faker(rng, lambda f: f.url())
    head, path = m.group(1), m.group(3) or ""
    domain = with_faker(rng, lambda f: f.domain_name())
    if path:
        path = re.sub(r"(?<=/)(?:~|@)?[^/?#]+", lambda p: with_faker(rng, lambda f: f.user_name())
                      if p.group().lower() not in ("user", "users", "u", "profile", "people",
                                                   "in") else p.group(), path)
    return head + domain + path


def fake_value(category: str, value: str, rng: random.Random) -> str:
    """A realistic fake of the same kind and format as `value` (never a placeholder)."""
    if category == "email":
        return with_faker(rng, lambda f: f"{f.first_name().lower()}.{f.last_name().lower()}"
                                          f"{rng.randrange(10, 99)}@{f.free_email_domain()}")
    if category == "credit_card":
        return _fix_last_digit(_same_shape_digits(value, rng), luhn_ok)
    if category == "iban":
        body = _same_shape_digits(value[4:], rng)
        compact = value[:2] + "00" + body.replace(" ", "")
        check = 98 - int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97
        return value[:2] + f"{check:02d}" + body
    if category == "national_id":  # same kind (country), layout and a valid checksum
        return fake_national_id(value, rng) or _same_shape_digits(value, rng)
    if category == "ssn":
        return f"{rng.randrange(100, 666):03d}-{rng.randrange(1, 100):02d}-" \
               f"{rng.randrange(1, 10000):04d}"
    if category == "ip_address":
        return ".".join(str(rng.randrange(1, 255)) for _ in range(4))
    if category == "date_of_birth":
        return _fake_date(value, rng)
    if category == "street_address":
        # The address pattern takes a dot after the suffix ("St."), which may end the sentence.
        period = "." if value.endswith(".") else ""
        multiline = "\n" in value
        has_city = bool(re.search(r",\s+[A-Z]{2}\s+\d{5}", value))
        locale = _address_locale(value)
        if locale == "en_GB":  # "221B Baker Street, London NW1 6XE"
            return with_faker(rng, lambda f: f"{f.street_address()}"
                              f"{chr(10) if multiline else ', '}{f.city()} {f.postcode()}",
                              locale) + period
        if locale:  # an address in a country's own style gets a fake in that style
            return with_faker(rng, lambda f: _one_line(f.street_address()), locale) + period

        def make(f):
            street = f.street_address()
            if not has_city:
                return street.rstrip(".") + period
            return f"{street}{chr(10) if multiline else ', '}{f.city()}, {f.state_abbr()} " \
                   f"{f.postcode()}"
        return with_faker(rng, make)
    if category == "person":
        return with_faker(rng, lambda f: " ".join(
            f.first_name() if i == 0 else f.last_name()
            for i, _ in enumerate(value.split())))
    if category == "url":
        return _fake_url(value, rng)
    if category == "handle":
        return "@" + _with_faker_user(rng)
    if category == "phone":
        head = _phone_country_part(value)
        return head + _same_shape_digits(value[len(head):], rng)
    return _same_shape_digits(value, rng)

