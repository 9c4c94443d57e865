"""pii evaluation sets from material this project did not write.

`presidio` — the human-written sentence templates of Microsoft's presidio-evaluator (its
`data_generator/raw_data/templates.txt`: support requests, letters, address blocks, signatures,
dialogue, news lines) filled with the identity records shipped beside them
(`FakeNameGenerator.com_3000.csv`: 3,000 people of 24 name sets and 30 countries, each with a
street address written the local way, a local phone number, an e-mail built from the name, a
birthday). Neither the templates nor the records come from Faker or from our detectors' word
lists; we only fill the slots. Values without a usable column (card numbers, IBANs, SSNs, IPs:
the CSV's card numbers were mangled by a spreadsheet) come from Faker and are counted apart in
`planted_by_source`, so the figures say which values are ours.

The templates and the records are split in two halves by index: `dev` (even templates, first
1,500 records) is what the detectors may be tuned on; `heldout` (odd templates, last 1,500
records) is only for reporting. Install the data with `pip install --no-deps
presidio-evaluator` (its raw files are read from the installed package; nothing of it is
imported or run).

Each example is (id, text, planted): planted holds the direct identifiers of the text (person
names as `Name`, so any surviving name word counts as a leak; street lines, phones, e-mails,
personal URLs, cards, IBANs, SSNs, IPs, dates of birth) with a category, as `Planted` values.
Cities, countries, organisations, jobs, ages and bare street names are quasi-identifiers: not
planted (the job's default `direct` policy keeps them).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import random
import re

SPLITS = ("dev", "heldout")


class Planted(str):
    """A planted value with its category (`person`, `street_address`, `phone`, ...)."""

    category = ""

    def __new__(cls, value: str, category: str):
        obj = super().__new__(cls, value)
        obj.category = category
        return obj

    def parts(self) -> list:
        return [str(self)]


class Name(Planted):
    """A planted person name: it leaks if any of its name words survives, not only in full."""

    def __new__(cls, value: str):
        return super().__new__(cls, value, "person")

    def parts(self) -> list:
        # Titles and initials are not identifying.
        return [w for w in self.split() if len(w) > 2 and "." not in w
                and w.lower() not in {"mrs", "miss", "prof"}]


def _raw_dir() -> str:
    spec = importlib.util.find_spec("presidio_evaluator")  # finds, does not import
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the `presidio` pii set reads presidio-evaluator's raw data: "
                         "pip install --no-deps presidio-evaluator")
    return os.path.join(list(spec.submodule_search_locations)[0], "data_generator", "raw_data")


def _records(split: str) -> list:
    with open(os.path.join(_raw_dir(), "FakeNameGenerator.com_3000.csv"),
              encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    half = len(rows) // 2
    return rows[:half] if split == "dev" else rows[half:]


def _templates(split: str) -> list:
    with open(os.path.join(_raw_dir(), "templates.txt"), encoding="utf-8") as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    keep = 0 if split == "dev" else 1
    # The file writes line breaks inside a template as a literal backslash-n.
    return [ln.replace("\\n", "\n").replace("\\,", ",") for i, ln in enumerate(lines)
            if i % 2 == keep]


_ZIP_FIRST = {"AT", "BE", "CH", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GL", "HU", "IS", "IT",
              "NL", "NO", "PL", "PT", "SE", "SI", "TN", "UY", "BR", "CY"}
_COUNTRY_NAMES = {}


def _address(r: dict, rng: random.Random, multiline: bool) -> str:
    sep = "\n" if multiline else ", "
    if r["Country"] in _ZIP_FIRST:
        city = f"{r['ZipCode']} {r['City']}"
    elif r["Country"] in {"US", "CA", "AU"}:
        city = f"{r['City']}, {r['State']} {r['ZipCode']}"
    else:
        city = f"{r['City']} {r['ZipCode']}"
    parts = [r["StreetAddress"], city]
    if rng.random() < 0.5:
        parts.append(r["CountryFull"])
    return sep.join(parts)


def _phone(r: dict, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"+{r['TelephoneCountryCode']} {r['TelephoneNumber']}"
    return r["TelephoneNumber"]


# Slots without a usable column in the records (the CSV's card numbers were mangled by a
# spreadsheet): Faker's values, counted apart as "<category>:faker".
_FAKER_VALUES = {"credit_card_number": ("credit_card", lambda f: f.credit_card_number()),
                 "iban": ("iban", lambda f: f.iban()), "ssn": ("ssn", lambda f: f.ssn()),
                 "ip_address": ("ip_address", lambda f: f.ipv4_public())}


def _secondary(rng: random.Random) -> str:
    return rng.choice(["Apt. {}", "Suite {}", "Unit {}", "Flat {}", "Floor {}"]).format(
        rng.randrange(1, 400))


def presidio_set(n: int, seed: int, split: str = "dev", clean: bool = False) -> list:
    """n examples [(id, text, [Planted])] of the `presidio` set's `split`. With `clean`, only
    the templates without a direct identifier (cities, countries, organisations, jobs, ages,
    bare street names): every word an anonymiser changes there is a false replacement."""
    from faker import Faker  # only for cards, IBANs, SSNs, IPs (counted apart)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    records, templates = _records(split), _templates(split)
    with open(os.path.join(_raw_dir(), "companies_and_organizations.csv"),
              encoding="utf-8") as f:
        orgs = [ln.strip() for ln in f][1:]
    # Only templates that hold at least one direct identifier: the rest test precision, which
    # `words_kept` already measures on every example.
    direct = ("person", "name", "first_name", "last_name", "address", "phone_number", "email",
              "credit_card_number", "iban", "ssn", "ip_address", "url", "building_number",
              "date_of_birth", "us_driver_license")
    if clean:  # precision: only templates without a direct identifier slot
        templates = [t for t in templates if not any("{{" + k in t for k in direct)]
    else:
        templates = [t for t in templates if any("{{" + k in t for k in direct)]
    out = []
    for i in range(n):
        template = templates[i % len(templates)] if i < len(templates) else \
            rng.choice(templates)
        planted: list = []
        person = rng.choice(records)
        used_person = [False]

        def rec(gender=None):
            # The first name slot of a template is the main person (so an e-mail slot can
            # match the name, as in real text); later slots are other people.
            nonlocal person
            if not used_person[0] and (gender is None or person["Gender"] == gender):
                used_person[0] = True
                return person
            pool = [r for r in records if gender is None or r["Gender"] == gender]
            return rng.choice(pool)

        def fill(m):
            slot = m.group(1)
            gender = "male" if slot.endswith("_male") else "female" if \
                slot.endswith("_female") else None
            base = re.sub(r"_(?:male|female|nonbinary)$", "", slot)
            if base in ("person", "name"):
                r = rec(gender)
                value = f"{r['GivenName']} {r['Surname']}"
                if rng.random() < 0.15:
                    value = f"{r['GivenName']} {r['MiddleInitial']}. {r['Surname']}"
                planted.append(Name(value))
                return value
            if base == "first_name":
                r = rec(gender)
                planted.append(Name(r["GivenName"]))
                return r["GivenName"]
            if base == "last_name":
                r = rec(gender)
                planted.append(Name(r["Surname"]))
                return r["Surname"]
            if base == "prefix":
                return {"male": "Mr.", "female": rng.choice(["Mrs.", "Ms."])}.get(
                    gender, rng.choice(["Mr.", "Ms.", "Dr."]))
            if base == "address":
                value = _address(person, rng, multiline=rng.random() < 0.5)
                planted.append(Planted(person["StreetAddress"], "street_address"))
                return value
            if base == "building_number":
                return "\x00BN\x00"  # resolved with the street name that follows it
            if base == "street_name":
                return "\x00SN\x00"
            if base == "secondary_address":
                return _secondary(rng)
            if base == "city":
                return rng.choice(records)["City"]
            if base == "country":
                return rng.choice(records)["CountryFull"]
            if base in ("zipcode", "postcode"):
                return person["ZipCode"]
            if base == "state_abbr":
                return person["State"] or "NY"
            if base == "phone_number":
                value = _phone(rng.choice(records), rng)
                planted.append(Planted(value, "phone"))
                return value
            if base == "email":
                value = person["EmailAddress"] if used_person[0] else \
                    rng.choice(records)["EmailAddress"]
                planted.append(Planted(value, "email"))
                return value
            if base == "url":
                value = f"https://www.{person['Domain']}"
                planted.append(Planted(person["Domain"], "url"))
                return value
            if base == "organization":
                return rng.choice(orgs)
            if base == "job":
                return rng.choice(records)["Occupation"].lower()
            if base in ("nationality", "nation_woman", "nation_plural"):
                return rng.choice(["French", "Danish", "Polish", "Brazilian", "Icelandic"])
            if base == "age":
                return str(rng.randrange(18, 90))
            if base == "year":
                return str(rng.randrange(1950, 2020))
            if base == "day_of_week":
                return rng.choice(["Monday", "Tuesday", "Friday"])
            if base == "date_time":
                return fake.date_time_this_decade().strftime("%d/%m/%Y %H:%M")
            if base == "date_of_birth":
                value = person["Birthday"]
                planted.append(Planted(value, "date_of_birth"))
                return value
            if base in _FAKER_VALUES:
                category, make = _FAKER_VALUES[base]
                value = make(fake)
                planted.append(Planted(value, category + ":faker"))
                return value
            if base == "us_driver_license":
                value = f"{rng.choice('ABCDEFGHJKLMNPRSTW')}{rng.randrange(10**6, 10**7)}"
                planted.append(Planted(value, "id_number:ours"))
                return value
            return m.group(0)

        text = re.sub(r"\{\{(\w+)\}\}", fill, template)
        # "12 Main" when a building number precedes a street name, else the bare street name
        # (a quasi-identifier, not planted).
        def street(m):
            r = person if not m.group(1) else rng.choice(records)
            line = r["StreetAddress"]
            number = re.search(r"\d+[A-Za-z]?", line)
            name = re.sub(r"\s*\b\d+[A-Za-z]?\b\s*", " ", line).strip(" ,") or line
            if m.group(1):
                value = f"{number.group() if number else rng.randrange(1, 300)} {name}"
                planted.append(Planted(value, "street_address"))
                return value
            return name
        text = re.sub(r"(\x00BN\x00 )?\x00SN\x00", street, text)
        text = text.replace("\x00BN\x00", str(rng.randrange(1, 300)))
        out.append((f"pe-{split}{'-clean' if clean else ''}-{i:04d}", text, planted))
    return out


def category_of(value) -> str:
    return getattr(value, "category", "") or "value"
