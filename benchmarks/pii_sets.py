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
Quasi-identifiers below country level are planted apart, category `quasi:<kind>` (`city`,
`state`, `postcode`, `organization`, `job`, `age`, `year`, `date`): the benchmark scores them
only as quasi leaks (`--pii_policy`), never in the direct figures. Countries, nationalities and
bare street names are not planted.
"""

from __future__ import annotations

import csv
import datetime
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

    def __new__(cls, value: str, gender: str = ""):
        obj = super().__new__(cls, value, "person")
        obj.gender = gender  # the record's "male"/"female" ('' unknown): a fake keeps it
        return obj

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


class _Filler:
    """Fills presidio-evaluator templates from the identity records, planting what it fills."""

    def __init__(self, split: str, seed: int):
        from faker import Faker  # only for cards, IBANs, SSNs, IPs (counted apart)
        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.records = _records(split)
        with open(os.path.join(_raw_dir(), "companies_and_organizations.csv"),
                  encoding="utf-8") as f:
            self.orgs = [ln.strip() for ln in f][1:]

    def fill(self, template: str, person: dict, planted: list) -> str:
        """The template with its slots filled; `person` is the main person (the first name
        slot, and the e-mail, address and URL slots, so an e-mail can match the name, as in
        real text); later name slots are other people."""
        rng, records = self.rng, self.records
        used_person = [False]

        def rec(gender=None):
            if not used_person[0] and (gender is None or person["Gender"] == gender):
                used_person[0] = True
                return person
            pool = [r for r in records if gender is None or r["Gender"] == gender]
            return rng.choice(pool)

        def quasi(value: str, kind: str) -> str:
            """A quasi-identifier slot's value, planted as `quasi:<kind>` (kept apart from the
            direct identifiers in every figure)."""
            if value.strip():
                planted.append(Planted(value, "quasi:" + kind))
            return value

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
                planted.append(Name(value, r["Gender"]))
                return value
            if base == "first_name":
                r = rec(gender)
                planted.append(Name(r["GivenName"], r["Gender"]))
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
                return quasi(rng.choice(records)["City"], "city")
            if base == "country":
                return rng.choice(records)["CountryFull"]
            if base in ("zipcode", "postcode"):
                return quasi(person["ZipCode"], "postcode")
            if base == "state_abbr":
                return quasi(person["State"] or "NY", "state")
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
                return quasi(rng.choice(self.orgs), "organization")
            if base == "job":
                return quasi(rng.choice(records)["Occupation"].lower(), "job")
            if base in ("nationality", "nation_woman", "nation_plural"):
                return rng.choice(["French", "Danish", "Polish", "Brazilian", "Icelandic"])
            if base == "age":
                return quasi(str(rng.randrange(18, 90)), "age")
            if base == "year":
                return quasi(str(rng.randrange(1950, 2020)), "year")
            if base == "day_of_week":
                return rng.choice(["Monday", "Tuesday", "Friday"])
            if base == "date_time":
                # Fixed bounds (not "this decade"), so a set's texts do not change with the day.
                value = self.fake.date_time_between(
                    datetime.datetime(2020, 1, 1), datetime.datetime(2029, 12, 31)
                ).strftime("%d/%m/%Y %H:%M")
                quasi(value.split(" ")[0], "date")  # the date; a time of day names nobody
                return value
            if base == "date_of_birth":
                value = person["Birthday"]
                planted.append(Planted(value, "date_of_birth"))
                return value
            if base in _FAKER_VALUES:
                category, make = _FAKER_VALUES[base]
                value = make(self.fake)
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
        return text.replace("\x00BN\x00", str(rng.randrange(1, 300)))


# Only templates that hold at least one direct identifier: the rest test precision, which
# `words_kept` already measures on every example.
_DIRECT = ("person", "name", "first_name", "last_name", "address", "phone_number", "email",
           "credit_card_number", "iban", "ssn", "ip_address", "url", "building_number",
           "date_of_birth", "us_driver_license")


def _split_templates(split: str, clean: bool) -> list:
    templates = _templates(split)
    if clean:  # precision: only templates without a direct identifier slot
        return [t for t in templates if not any("{{" + k in t for k in _DIRECT)]
    return [t for t in templates if any("{{" + k in t for k in _DIRECT)]


def presidio_set(n: int, seed: int, split: str = "dev", clean: bool = False) -> list:
    """n examples [(id, text, [Planted])] of the `presidio` set's `split`. With `clean`, only
    the templates without a direct identifier (cities, countries, organisations, jobs, ages,
    bare street names): every word an anonymiser changes there is a false replacement."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    filler = _Filler(split, seed)
    rng = filler.rng
    templates = _split_templates(split, clean)
    out = []
    for i in range(n):
        template = templates[i % len(templates)] if i < len(templates) else \
            rng.choice(templates)
        planted: list = []
        person = rng.choice(filler.records)
        text = filler.fill(template, person, planted)
        out.append((f"pe-{split}{'-clean' if clean else ''}-{i:04d}", text, planted))
    return out


def _draw(pools, rng: random.Random) -> str:
    """A template, with and without identifiers alike often, none twice before all were used."""
    side = 0 if rng.random() < 0.5 else 1
    if not pools[side]:
        pools[side].extend(rng.sample(pools[2 + side], len(pools[2 + side])))
    return pools[side].pop()


def long_set(n: int, seed: int, split: str = "dev", min_words: int = 500,
             max_words: int = 2000) -> list:
    """n long documents [(id, text, [Planted])] of min_words..max_words words (log-uniform):
    letters, threads and reports whose paragraphs are the `split`'s templates (with and
    without identifiers) filled around one main person, so the same name, e-mail, address and
    birthday recur from the first paragraph to the last, as in a real case file. A document
    draws its templates without replacement (the job's repetition filter rightly drops a text
    that says the same sentences again and again); a split has ~105 templates, ~2,000 words,
    hence max_words."""
    import math
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    filler = _Filler(split, seed)
    rng = filler.rng
    with_ids, clean = _split_templates(split, False), _split_templates(split, True)
    out = []
    for i in range(n):
        target = int(math.exp(rng.uniform(math.log(min_words), math.log(max_words))))
        person = rng.choice(filler.records)
        planted: list = []
        genre = ("letter", "thread", "report")[i % 3]
        pools = ([], [], with_ids, clean)  # what is left of each pool, then the pools
        paragraphs, words = [], 0
        while words < target:
            sentences = [filler.fill(_draw(pools, rng), person, planted).strip()
                         for _ in range(rng.randrange(3, 8))]
            # Sentences end as sentences do: a template without end punctuation gets a period.
            paragraph = " ".join(s if s[-1:] in ".!?" else s + "." for s in sentences if s)
            if genre == "thread":
                paragraph = f"On {rng.choice(['Monday', 'Tuesday', 'Friday'])}, " \
                    f"{person['GivenName']} wrote:\n> " + paragraph.replace("\n", "\n> ")
            paragraphs.append(paragraph)
            words += len(paragraph.split())
        name = f"{person['GivenName']} {person['Surname']}"
        if genre == "letter":
            paragraphs = [f"Dear {name},"] + paragraphs + [f"Yours sincerely,\n{name}"]
            planted += [Name(name, person["Gender"]), Name(name, person["Gender"])]
        elif genre == "report":
            paragraphs = [f"Case report: {name}"] + paragraphs
            planted.append(Name(name, person["Gender"]))
        # Each value once per document: a name that survives anywhere leaks that person,
        # however often the document mentions them.
        unique = {(str(v), v.category): v for v in planted}
        out.append((f"long-{split}-{i:04d}", "\n\n".join(paragraphs), list(unique.values())))
    return out


def category_of(value) -> str:
    return getattr(value, "category", "") or "value"


# --- national ids -------------------------------------------------------------------------------
# `national_ids`: national identity numbers of 22 formats (18 countries) in short sentences.
# The values come from code this project did not write: Faker's per-locale providers (en_GB
# NINO, pl_PL PESEL, it_IT codice fiscale, fr_FR NIR, es_ES DNI and NIE, nl_NL BSN, en_IN
# Aadhaar and PAN, and the ssn/cpf/birth_number of sv_SE, fi_FI, no_NO, nl_BE, pt_BR, de_CH,
# cs_CZ, zh_CN, ro_RO, en_CA) and python-stdnum (its documented examples of each format, its
# `format()` layouts, and, for the German Steuer-ID and the NHS number, which Faker lacks,
# random digits its validator accepts; our detector validates with the same library, so those
# two measure shape and cues, not the checksum). Faker's Aadhaar numbers mostly fail the
# Verhoeff check real ones pass, and many of its Chinese ids fail theirs: only the ones stdnum
# accepts are used. The Personalausweis numbers have no outside source: they are ours (random,
# ICAO 9303 check digit computed here) and counted apart as `:ours`.
# The sentences are ours (forms, letters and notes in each country's language and in English,
# with the cue words such documents carry, and ordinary numbers beside the id that must stay),
# plus presidio-evaluator's two SSN templates with a foreign national id in the slot.

_ID_TEMPLATES = {
    "gb_nino": ["Please quote your National Insurance number ({v}) on all letters about claim "
                "48213.", "NI number: {v}\nTax year: 2023/24\nTax code: 1257L",
                "Payroll note from 14 March: NINO {v}, 37.5 hours a week."],
    "de_idnr": ["Ihre steuerliche Identifikationsnummer lautet {v}. Bitte geben Sie sie bei "
                "jeder Steuererklärung an.", "Steuer-ID: {v}\nSteuerklasse: 3\nKinder: 2",
                "The employee's German tax ID {v} was added to the payroll file in May 2023."],
    "de_document": ["Personalausweisnummer: {v}, gültig bis 12.08.2031.",
                    "Bitte legen Sie Ihren Personalausweis ({v}) bei der Abholung vor; Termin "
                    "um 14:30 Uhr in Raum 12."],
    "pl_pesel": ["PESEL: {v}\nNumer zamówienia: 2024/05/117",
                 "Proszę podać numer PESEL {v} w formularzu na stronie 3.",
                 "The patient's PESEL {v} was checked at admission, bed 14."],
    "it_codice_fiscale": ["Codice fiscale: {v} - tessera sanitaria valida fino al 2027.",
                          "Il mio codice fiscale è {v}, la fattura n. 145 è di 320 euro.",
                          "Allego il modulo con C.F. {v} e 2 copie del contratto."],
    "fr_nir": ["Numéro de sécurité sociale : {v}\nCaisse : CPAM de Lyon, dossier 55871",
               "Veuillez indiquer votre NIR ({v}) sur la feuille de soins n° 3.",
               "Her French social security number {v} is on page 2 of the form."],
    "es_dni": ["DNI: {v}\nContrato de alquiler: 850 euros al mes",
               "Adjunto copia del DNI {v} para la reserva de 3 noches.",
               "Guest ID (DNI {v}) checked at the desk, room 214."],
    "es_nie": ["Mi NIE es {v} y mi número de expediente es 4471.", "NIE: {v}\nPiso 3, puerta 2"],
    "nl_bsn": ["Uw burgerservicenummer (BSN) is {v}. Bewaar deze brief goed.",
               "BSN: {v}\nAantal uren: 32", "Please add the BSN {v} to the 2024 tax form."],
    "gb_nhs": ["NHS number: {v}\nAppointment at 10:40, room 6",
               "The referral letter gives NHS number {v} and 2 previous visits."],
    "in_aadhaar": ["Aadhaar No. {v} linked to the account on 5 January.",
                   "Please share your Aadhaar number {v} for KYC of order 88123."],
    "in_pan": ["PAN: {v}\nAssessment year 2024-25",
               "My PAN card number is {v}; the refund of 12,400 rupees is pending."],
    "se_personnummer": ["Personnummer: {v}\nOrdernummer: 55120",
                        "Mitt personnummer är {v} och jag bor i Uppsala sedan 2019."],
    "fi_hetu": ["Henkilötunnus: {v}\nAsiakasnumero: 4471",
                "Henkilötunnukseni on {v}, hakemus lähetetty 3.5.2024."],
    "no_fodselsnummer": ["Fødselsnummer: {v}\nKundenummer: 20931",
                         "Mitt fødselsnummer er {v}, og saken gjelder faktura 118."],
    "be_nn": ["Rijksregisternummer: {v}\nDossier 2023/118",
              "Numéro de registre national : {v}, 2 enfants à charge."],
    "br_cpf": ["CPF: {v}\nPedido nº 48213", "Meu CPF é {v}, o valor é de 320 reais."],
    "ch_ahv": ["AHV-Nummer: {v}\nPensum: 80 %",
               "Numéro AVS {v}, caisse de compensation 66."],
    "cz_rodne_cislo": ["Rodné číslo: {v}\nČíslo smlouvy: 2023/118",
                       "Pacient, rodné číslo {v}, přijat 12. 3. na pokoj 214."],
    "cn_ric": ["身份证号码：{v}", "Resident identity card {v}, issued in 2015 in Chengdu."],
    "ro_cnp": ["CNP: {v}\nNumăr contract: 4471",
               "Codul numeric personal (CNP) {v} apare pe pagina 2."],
    "ca_sin": ["Social Insurance Number (SIN): {v}\nEmployer: 40 hours a week",
               "Votre numéro d'assurance sociale (NAS) est le {v}."],
}
# No word that names an id: what a detector that needs a cue misses (counted as `:nocue`).
_NO_CUE_TEMPLATES = ("Applicant {v}, status: approved on 3 May.", "Reference: {v}\nPages: 3",
                     "Row 14: {v}, checked.")
# Kinds a generic "social security number" / "SSN" template can carry.
_GENERIC_KINDS = ("gb_nino", "de_idnr", "pl_pesel", "it_codice_fiscale", "fr_nir", "es_dni",
                  "es_nie", "nl_bsn", "se_personnummer", "fi_hetu", "br_cpf", "ch_ahv", "cn_ric",
                  "ca_sin")


def stdnum_examples(module) -> list:
    """The valid example numbers a python-stdnum module documents (`>>> validate('...')`
    lines that return, not raise)."""
    found = re.findall(r">>> (?:validate|compact|format)\('([^']+)'\)[^\n]*\n(?!Traceback)",
                       module.__doc__ or "")
    return list(dict.fromkeys(v for v in found if module.is_valid(v)))


def _icao(body: str) -> str:
    return str(sum(int(c, 36) * (7, 3, 1)[i % 3] for i, c in enumerate(body)) % 10)


def _id_sources():
    """kind -> [(source, draw(rng) -> value)]."""
    from faker import Faker
    from stdnum.de import idnr
    from stdnum.es import dni, nie
    from stdnum.fr import nir
    from stdnum.gb import nhs
    from stdnum.in_ import aadhaar, pan
    from stdnum.it import codicefiscale
    from stdnum.nl import bsn
    from stdnum.pl import pesel
    from stdnum.be import nn as be_nn
    from stdnum.br import cpf
    from stdnum.ca import sin
    from stdnum.ch import ssn as ch_ssn
    from stdnum.cn import ric
    from stdnum.cz import rc
    from stdnum.fi import hetu
    from stdnum.no import fodselsnummer
    from stdnum.ro import cnp
    from stdnum.se import personnummer
    fakers = {loc: Faker(loc) for loc in ("en_GB", "pl_PL", "it_IT", "fr_FR", "es_ES", "nl_NL",
                                          "en_IN", "sv_SE", "fi_FI", "no_NO", "nl_BE", "pt_BR",
                                          "de_CH", "cs_CZ", "zh_CN", "ro_RO", "en_CA")}

    def faker(loc, method, layout=None):
        def draw(rng):
            fakers[loc].seed_instance(rng.getrandbits(32))
            value = getattr(fakers[loc], method)()
            return layout(value) if layout and rng.random() < 0.5 else value
        return draw

    def accepted(module, n, first="123456789", layout=None):
        def draw(rng):
            while True:
                value = rng.choice(first) + "".join(str(rng.randrange(10)) for _ in range(n - 1))
                if module.is_valid(value):
                    return layout(value) if layout and rng.random() < 0.5 else value
        return draw

    def accepted_faker(loc, method, module, layout=None):
        def draw(rng):
            while True:  # keep the values stdnum accepts (Faker's Aadhaar numbers mostly fail
                value = faker(loc, method, layout)(rng)  # Verhoeff, its Chinese RICs often)
                if module.is_valid(value):
                    return value
        return draw

    def de_document(rng):
        body = rng.choice("LMNPRTVWXY") + "".join(rng.choice("CFGHJKLMNPRTVWXYZ0123456789")
                                                  for _ in range(8))
        return body + _icao(body)

    def documented(module):
        examples = stdnum_examples(module)
        return lambda rng: rng.choice(examples)

    return {
        "gb_nino": [("faker", faker("en_GB", "ssn"))],
        "de_idnr": [("stdnum", accepted(idnr, 11, layout=idnr.format)),
                    ("stdnum_doc", documented(idnr))],
        "de_document": [("ours", de_document)],
        "pl_pesel": [("faker", faker("pl_PL", "pesel")), ("stdnum_doc", documented(pesel))],
        "it_codice_fiscale": [("faker", faker("it_IT", "ssn")),
                              ("stdnum_doc", lambda rng: "RCCMNL83S18D969H")],
        "fr_nir": [("faker", faker("fr_FR", "ssn", nir.format)), ("stdnum_doc", documented(nir))],
        "es_dni": [("faker", faker("es_ES", "nif")), ("stdnum_doc", documented(dni))],
        "es_nie": [("faker", faker("es_ES", "nie")), ("stdnum_doc", documented(nie))],
        "nl_bsn": [("faker", faker("nl_NL", "ssn", bsn.format)), ("stdnum_doc", documented(bsn))],
        "gb_nhs": [("stdnum", accepted(nhs, 10, first="456789", layout=nhs.format)),
                   ("stdnum_doc", documented(nhs))],
        "in_aadhaar": [("faker", accepted_faker("en_IN", "aadhaar_id", aadhaar, aadhaar.format)),
                       ("stdnum_doc", documented(aadhaar))],
        "in_pan": [("faker", faker("en_IN", "pan")), ("stdnum_doc", documented(pan))],
        "se_personnummer": [("faker", faker("sv_SE", "ssn")),
                            ("stdnum_doc", documented(personnummer))],
        "fi_hetu": [("faker", faker("fi_FI", "ssn")), ("stdnum_doc", documented(hetu))],
        "no_fodselsnummer": [("faker", faker("no_NO", "ssn")),
                             ("stdnum_doc", documented(fodselsnummer))],
        "be_nn": [("faker", faker("nl_BE", "ssn", be_nn.format)),
                  ("stdnum_doc", documented(be_nn))],
        "br_cpf": [("faker", faker("pt_BR", "cpf")), ("stdnum_doc", documented(cpf))],
        "ch_ahv": [("faker", faker("de_CH", "ssn")), ("stdnum_doc", documented(ch_ssn))],
        "cz_rodne_cislo": [("faker", faker("cs_CZ", "birth_number")),
                           ("stdnum_doc", documented(rc))],
        "cn_ric": [("faker", accepted_faker("zh_CN", "ssn", ric)), ("stdnum_doc", documented(ric))],
        "ro_cnp": [("faker", faker("ro_RO", "ssn")), ("stdnum_doc", documented(cnp))],
        "ca_sin": [("faker", faker("en_CA", "ssn")), ("stdnum_doc", documented(sin))],
    }


def national_id_set(n: int, seed: int) -> list:
    """n examples [(id, text, [Planted])]: one national id each, category
    `national_id:<kind>:<source>` (source: faker, stdnum, stdnum_doc or ours; `:nocue` added
    for the tenth of the examples whose sentence has no word naming the id)."""
    rng = random.Random(seed)
    sources = _id_sources()
    with open(os.path.join(_raw_dir(), "templates.txt"), encoding="utf-8") as f:
        generic = [ln.strip() for ln in f if "{{ssn}}" in ln]
    kinds = sorted(sources)
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        # The documented examples come first, then mostly the generated values.
        source, draw = sources[kind][-1] if i < 2 * len(kinds) else \
            sources[kind][0] if rng.random() < 0.85 else rng.choice(sources[kind])
        value = draw(rng)
        draw_template = rng.random()
        if draw_template < 0.1:
            template = rng.choice(_NO_CUE_TEMPLATES)
            source += ":nocue"
        elif kind in _GENERIC_KINDS and draw_template < 0.25:
            template = rng.choice(generic).replace("{{ssn}}", "{v}")
        else:
            template = rng.choice(_ID_TEMPLATES[kind])
        out.append((f"nid-{i:04d}", template.format(v=value),
                    [Planted(value, f"national_id:{kind}:{source}")]))
    return out


# python-stdnum modules of numbers that name no person (books, products, securities, companies,
# VAT registrations, containers, payment references): their documented examples are ordinary
# numbers that an anonymiser must leave alone.
_ORDINARY_MODULES = (
    "isbn", "issn", "ismn", "ean", "isin", "lei", "bic", "imo", "iso6346", "iso11649", "isrc",
    "grid", "isan", "cusip", "figi", "casrn", "eu.ecnumber", "eu.banknote", "eu.vat", "vatin",
    "gb.sedol", "gb.vat", "de.vat", "de.wkn", "de.handelsregisternummer", "de.leitweg",
    "fr.siren", "fr.siret", "fr.tva", "it.iva", "it.aic", "es.cif", "nl.btw", "nl.brin",
    "pl.regon", "in_.gstin", "au.abn", "au.acn", "be.vat", "ch.uid", "ch.vat", "dk.cvr",
    "no.orgnr", "no.mva", "se.orgnr", "fi.ytunnus", "ee.registrikood", "at.uid",
    "at.businessid", "us.ein", "us.rtn", "jp.cn", "kr.brn", "ru.ogrn", "cn.uscc", "mx.rfc")
_ORDINARY_FRAMES = ("{name} {v}", "Please check {name} {v} before the order ships.",
                    "The catalogue lists {name} {v} on page 12.", "{name}: {v}\nQuantity: 40",
                    "Invoice 2231 refers to {v} ({name}).")


def ordinary_codes_set(n: int, seed: int) -> list:
    """n examples [(id, text, [])] holding one documented example number of a python-stdnum
    format that names no person (ISBN, EAN, ISIN, LEI, VAT and company numbers, ...), in a
    short frame of ours: every value an anonymiser replaces here is a false replacement."""
    import importlib
    rng = random.Random(seed)
    pool = []
    for name in _ORDINARY_MODULES:
        module = importlib.import_module("stdnum." + name)
        label = re.split(r"[ (,]", (module.__doc__ or name).strip())[0]
        pool += [(label, v.strip()) for v in stdnum_examples(module)]
    out = []
    for i in range(n):
        label, value = pool[i % len(pool)] if i < len(pool) else rng.choice(pool)
        text = rng.choice(_ORDINARY_FRAMES).format(name=label, v=value)
        out.append((f"code-{i:04d}", text, []))
    return out
