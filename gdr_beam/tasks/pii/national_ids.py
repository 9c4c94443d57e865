"""National identity numbers beyond the US SSN: finding them and faking them.

Each kind is a shape (a regex with the separators people write), a validator and a maker of
valid fakes. The checksums are python-stdnum's (a maintained library of these formats), so a
number is taken only when its check digit is right. Precision first: a kind whose validator is
weak or absent (UK National Insurance numbers have no check digit; a Dutch BSN's 11-check
passes one random 9-digit number in 11; Aadhaar's Verhoeff digit one in 10; PAN's and the
Personalausweis' letters; the Canadian SIN's Luhn) is taken only with a cue word near it
("NINO", "BSN", "Aadhaar", "Personalausweis", or a generic "national ID", "identity number",
"social security number"), so an order number of the same shape stays. Kinds with a strong
check are taken anywhere: Steuer-ID (digit rule + check digit), PESEL (date + check digit),
codice fiscale (letters, date + check letter), NIR (mod-97 key), DNI/NIE (8 digits + check
letter), Norwegian fødselsnummer (date + two check digits), and the written layouts of the
Swedish, Finnish, Belgian, Czech and Chinese numbers (birth date first), the dotted CPF and
AHV; the same numbers as a bare run of digits (and the Romanian CNP, 13 digits like an EAN)
only with a cue.

A fake keeps the kind (so the country), the separators and letter case of the original, what
the number says of its holder's sex where it says it (PESEL, NIR, codice fiscale), and passes
every check the original passes (a 9-digit number valid both as a BSN and as a Canadian SIN
gets a fake valid as both), so a reader or a validator downstream sees a real-looking number.
The first twelve kinds have makers of their own; the others take Faker's per-country provider,
redrawn until stdnum accepts the value.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Callable, Optional

from stdnum import verhoeff
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

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Generic words that announce any national number (a kind that needs a cue takes these too).
# Not "tax number" or a bare "ID number": companies and orders have those.
_GENERIC_CUE = (r"national (?:id|identity|identification|insurance)|"
                r"(?:identity|identification|citizen|personal) (?:no\b|number|code)|"
                r"personal id\b|\bid card|social (?:security|insurance)|\bSSN\b")
_CUE_BEFORE, _CUE_AFTER = 60, 30  # characters searched for a cue before / after a value


@dataclasses.dataclass(frozen=True)
class Kind:
    """One national id format."""
    name: str
    shape: re.Pattern            # the value as written, separators included
    valid: Callable[[str], bool]  # on the value as written
    make: Callable[[str, random.Random], str]  # (compact original, rng) -> valid compact fake
    cue: Optional[re.Pattern] = None  # None: no cue needed; else its own words (or generic)


def _compact(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", value)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _letters(rng: random.Random, n: int, alphabet: str = _UPPER) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _retry(make: Callable[[], str], ok: Callable[[str], bool]) -> str:
    """make() until ok (the makers below are right by construction almost always; the rare
    draw a validator refuses, e.g. an Aadhaar palindrome, is drawn again)."""
    for _ in range(100):
        value = make()
        if ok(value):
            return value
    raise AssertionError("no valid fake drawn")  # a broken maker, not bad input


# --- the makers of valid fakes (compact form) -------------------------------------------------

def _make_nino(original: str, rng: random.Random) -> str:
    # Prefixes HMRC allocates: no D F I Q U V first, no D F I O Q U V second, not the reserved
    # pairs; the suffix is A-D (kept absent when the original had none).
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice([c for c in "ABCEGHJKLMNPRSTWXYZ"
                         if first + c not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")])
    suffix = rng.choice("ABCD") if len(original) == 9 else ""
    return first + second + _digits(rng, 6) + suffix


def _make_idnr(original: str, rng: random.Random) -> str:
    def draw():
        # Ten digits: one of them twice, eight others once (the rule stdnum checks), no
        # leading zero, then the ISO 7064 mod 11,10 check digit.
        pool = rng.sample("0123456789", 9)
        body = pool + [rng.choice(pool)]
        rng.shuffle(body)
        body = "".join(body)
        return body + idnr.mod_11_10.calc_check_digit(body)
    return _retry(draw, idnr.is_valid)


def _make_pesel(original: str, rng: random.Random) -> str:
    def draw():
        year, month, day = rng.randrange(1940, 2010), rng.randrange(1, 13), rng.randrange(1, 29)
        month += 20 if year >= 2000 else 0
        # The tenth digit's parity is the holder's sex: kept.
        sex = str(rng.randrange(int(original[9]) % 2, 10, 2))
        body = f"{year % 100:02d}{month:02d}{day:02d}{_digits(rng, 3)}{sex}"
        return body + pesel.calc_check_digit(body)
    return _retry(draw, pesel.is_valid)


_CF_MONTHS = "ABCDEHLMPRST"
_CF_OMOCODE = dict(zip("LMNPQRSTUV", "0123456789"))


def _make_codice_fiscale(original: str, rng: random.Random) -> str:
    def draw():
        # Day + 40 marks a woman: kept from the original (omocodia letters read as digits).
        female = int("".join(_CF_OMOCODE.get(c, c) for c in original[9:11].upper())) > 40
        day = rng.randrange(1, 29) + (40 if female else 0)
        # The place code: a letter and three digits (a Belfiore municipality code).
        body = (_letters(rng, 6, "BCDFGLMNPRSTVZ") + f"{rng.randrange(40, 100):02d}"
                + rng.choice(_CF_MONTHS) + f"{day:02d}" + rng.choice("ABCDEFGHILM")
                + f"{rng.randrange(1, 1000):03d}")
        return body + codicefiscale.calc_check_digit(body)
    return _retry(draw, codicefiscale.is_valid)


def _make_nir(original: str, rng: random.Random) -> str:
    def draw():
        # Sex digit kept; year, month, department (never 20, Corsica is 2A/2B), commune, order.
        department = rng.choice([d for d in range(1, 96) if d != 20])
        body = (original[0] + f"{rng.randrange(100):02d}{rng.randrange(1, 13):02d}"
                f"{department:02d}{rng.randrange(1, 990):03d}{rng.randrange(1, 1000):03d}")
        return body + nir.calc_check_digits(body)
    return _retry(draw, nir.is_valid)


def _make_dni(original: str, rng: random.Random) -> str:
    body = f"{rng.randrange(10 ** 7, 10 ** 8):08d}"
    return body + dni.calc_check_digit(body)


def _make_nie(original: str, rng: random.Random) -> str:
    body = rng.choice("XYZ") + _digits(rng, 7)
    return body + nie.calc_check_digit(body)


def _make_bsn(original: str, rng: random.Random) -> str:
    def draw():
        body = str(rng.randrange(1, 10)) + _digits(rng, 7)
        check = sum((9 - i) * int(d) for i, d in enumerate(body)) % 11
        return body + str(check) if check < 10 else ""
    return _retry(draw, bsn.is_valid)


def _make_nhs(original: str, rng: random.Random) -> str:
    def draw():
        body = str(rng.randrange(4, 10)) + _digits(rng, 8)
        check = (11 - sum((10 - i) * int(d) for i, d in enumerate(body)) % 11) % 11
        return body + str(check) if check < 10 else ""
    return _retry(draw, nhs.is_valid)


def _make_aadhaar(original: str, rng: random.Random) -> str:
    def draw():
        body = str(rng.randrange(2, 10)) + _digits(rng, 10)
        return body + verhoeff.calc_check_digit(body)
    return _retry(draw, aadhaar.is_valid)


def _make_pan(original: str, rng: random.Random) -> str:
    # The fourth letter is the holder type (P: a person): kept.
    return _retry(lambda: _letters(rng, 3) + original[3].upper() + _letters(rng, 1)
                  + f"{rng.randrange(1, 10000):04d}" + _letters(rng, 1), pan.is_valid)


def _from_faker(locale: str, method: str, valid: Callable[[str], bool]):
    """A maker from Faker's provider of that country's number (the other formats), redrawn
    until the validator accepts it and, where it can, as long as the original (so the layout
    of the original fits it; else the fake keeps Faker's own layout)."""
    def make(original: str, rng: random.Random) -> str:
        from gdr_beam.tasks.pii.fakes import with_faker  # pylint: disable=import-outside-toplevel
        fake = ""
        for _ in range(50):
            fake = with_faker(rng, lambda f: getattr(f, method)(), locale)
            if valid(fake) and len(_compact(fake)) == len(original):
                return _compact(fake)
        return fake if valid(fake) else _retry(
            lambda: with_faker(rng, lambda f: getattr(f, method)(), locale), valid)
    return make


# The Personalausweis / Reisepass document number (since Nov 2010): nine characters from an
# alphabet without vowels and look-alikes, then the ICAO 9303 check digit.
_DE_DOC = "CFGHJKLMNPRTVWXYZ"


def _icao_check(body: str) -> str:
    total = sum(int(c, 36) * (7, 3, 1)[i % 3] for i, c in enumerate(body))
    return str(total % 10)


def _de_document_ok(value: str) -> bool:
    compact = _compact(value).upper()
    if len(compact) == 9:  # written without its check digit: the shape alone (cue required)
        return any(c.isdigit() for c in compact)
    return _icao_check(compact[:9]) == compact[9]


def _make_de_document(original: str, rng: random.Random) -> str:
    body = rng.choice("LMNPRTVWXY") + _letters(rng, 8, _DE_DOC + "0123456789")
    return body + (_icao_check(body) if len(original) == 10 else "")


def _pesel_ok(value: str) -> bool:
    """stdnum's check, and a birth year of a living person: the month code says the century,
    and codes of the 1800s or the 2100s+ are 11-digit numbers of something else (a UK mobile
    number "07700900126" passes stdnum as born in 2277)."""
    return pesel.is_valid(value) and 1900 <= pesel.get_birth_date(value).year < 2100


def _valid_nino(value: str) -> bool:
    # No check digit: the cue and the shape are all there is. Any two letters are taken,
    # since test and placeholder prefixes (QQ, ZZ) are still written for people.
    return True


def _cue(words: str) -> re.Pattern:
    return re.compile(r"(?i:" + _GENERIC_CUE + r")|" + words)


# A value is a whole token and does not continue a longer run of digits ("4111 1111 1111 1111"
# holds no Aadhaar number): no word character beside it, nor a separator and a digit.
# ("No.44051401359" is a value; "3.14159265358" holds none.)
_B, _E = r"(?<![\w/+@-])(?<!\d[ .-])", r"(?![\w/@-])(?![ .-]\d)(?!\.\w)"

KINDS: tuple[Kind, ...] = (
    Kind("gb_nino", re.compile(_B + r"[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-Z]?" + _E),
         _valid_nino, _make_nino,
         _cue(r"(?i:national insurance|\bnino\b|n\.i\.(?: no| number)?|\bni (?:no|number)\b)")),
    Kind("de_idnr", re.compile(_B + r"[1-9]\d(?:\d{9}| \d{3} \d{3} \d{3})" + _E), idnr.is_valid,
         _make_idnr),
    Kind("de_document", re.compile(_B + r"[" + _DE_DOC + r"][" + _DE_DOC + r"0-9]{8}\d?" + _E),
         _de_document_ok, _make_de_document,
         _cue(r"(?i:personalausweis|ausweis|reisepass|passport|identity card|id card|id-karte|"
              r"dokumentennummer|document (?:no|number))")),
    Kind("pl_pesel", re.compile(_B + r"\d{11}" + _E), _pesel_ok, _make_pesel),
    Kind("it_codice_fiscale", re.compile(
        _B + r"(?i:[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z])"
        + _E), codicefiscale.is_valid, _make_codice_fiscale),
    Kind("fr_nir", re.compile(_B + r"[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}"
                              + _E), nir.is_valid, _make_nir),
    # No space before the letter: "12345678 a day" is a number and an article.
    Kind("es_dni", re.compile(_B + r"\d{8}-?[A-Za-z]" + _E), dni.is_valid, _make_dni),
    Kind("es_nie", re.compile(_B + r"[XYZxyz]-?\d{7}-?[A-Za-z]" + _E), nie.is_valid, _make_nie),
    Kind("nl_bsn", re.compile(_B + r"(?:\d{9}|\d{4}\.\d{2}\.\d{3}|\d{3}[ .-]\d{3}[ .-]\d{3})"
                              + _E), bsn.is_valid, _make_bsn,
         _cue(r"\bBSN\b|(?i:burgerservicenummer|sofinummer|sofi-nummer)")),
    Kind("gb_nhs", re.compile(_B + r"\d{3}[ -]?\d{3}[ -]?\d{4}" + _E), nhs.is_valid, _make_nhs,
         _cue(r"\bNHS\b")),
    Kind("in_aadhaar", re.compile(_B + r"[2-9]\d{3}[ -]?\d{4}[ -]?\d{4}" + _E), aadhaar.is_valid,
         _make_aadhaar, _cue(r"(?i:aadhaa?r|\buidai\b)|\bUID\b")),
    Kind("in_pan", re.compile(_B + r"[A-Z]{5}\d{4}[A-Z]" + _E), pan.is_valid, _make_pan,
         _cue(r"\bPAN\b|(?i:permanent account number)")),
    # Other countries: the layouts their owners write (birth date first, a separator before the
    # serial), each checked by stdnum (check digits + date); a bare run of digits of the same
    # length only with a cue.
    Kind("se_personnummer", re.compile(_B + r"\d{6}[-+]\d{4}" + _E), personnummer.is_valid,
         _from_faker("sv_SE", "ssn", personnummer.is_valid)),
    Kind("se_personnummer", re.compile(_B + r"\d{10}" + _E), personnummer.is_valid,
         _from_faker("sv_SE", "ssn", personnummer.is_valid), _cue(r"(?i:personnummer)")),
    Kind("fi_hetu", re.compile(_B + r"\d{6}[-+A-FU-Ya-fu-y]\d{3}[0-9A-Ya-y]" + _E), hetu.is_valid,
         _from_faker("fi_FI", "ssn", hetu.is_valid)),
    Kind("no_fodselsnummer", re.compile(_B + r"\d{6} ?\d{5}" + _E), fodselsnummer.is_valid,
         _from_faker("no_NO", "ssn", fodselsnummer.is_valid)),
    Kind("be_nn", re.compile(_B + r"\d{2}[. ]\d{2}[. ]\d{2}[- ]\d{3}[. ]\d{2}" + _E),
         be_nn.is_valid, _from_faker("nl_BE", "ssn", be_nn.is_valid)),
    Kind("be_nn", re.compile(_B + r"\d{11}" + _E), be_nn.is_valid,
         _from_faker("nl_BE", "ssn", be_nn.is_valid),
         _cue(r"\b(?:NISS|INSZ|RRN)\b|(?i:rijksregister|registre national|national number)")),
    Kind("br_cpf", re.compile(_B + r"\d{3}\.\d{3}\.\d{3}-\d{2}" + _E), cpf.is_valid,
         _from_faker("pt_BR", "cpf", cpf.is_valid)),
    Kind("br_cpf", re.compile(_B + r"\d{11}" + _E), cpf.is_valid,
         _from_faker("pt_BR", "cpf", cpf.is_valid), _cue(r"\bCPF\b")),
    Kind("ch_ahv", re.compile(_B + r"756\.\d{4}\.\d{4}\.\d{2}" + _E), ch_ssn.is_valid,
         _from_faker("de_CH", "ssn", ch_ssn.is_valid)),
    Kind("ch_ahv", re.compile(_B + r"756\d{10}" + _E), ch_ssn.is_valid,
         _from_faker("de_CH", "ssn", ch_ssn.is_valid), _cue(r"\b(?:AHV|AVS)\b")),
    Kind("cz_rodne_cislo", re.compile(_B + r"\d{6}/\d{4}" + _E), rc.is_valid,
         _from_faker("cs_CZ", "birth_number", rc.is_valid)),
    # Without the slash, or born before 1954 (nine digits, no check digit): with a cue.
    Kind("cz_rodne_cislo", re.compile(_B + r"(?:\d{6}/\d{3}|\d{9,10})" + _E), rc.is_valid,
         _from_faker("cs_CZ", "birth_number", rc.is_valid),
         _cue(r"(?i:rodné číslo|rodne cislo|birth number)|\bRČ\b")),
    Kind("cn_ric", re.compile(_B + r"\d{17}[\dXx]" + _E), ric.is_valid,
         _from_faker("zh_CN", "ssn", ric.is_valid)),
    Kind("ro_cnp", re.compile(_B + r"[1-9]\d{12}" + _E), cnp.is_valid,
         _from_faker("ro_RO", "ssn", cnp.is_valid), _cue(r"\bCNP\b|(?i:cod numeric personal)")),
    Kind("ca_sin", re.compile(_B + r"\d{3}[ -]?\d{3}[ -]?\d{3}" + _E), sin.is_valid,
         _from_faker("en_CA", "ssn", sin.is_valid),
         _cue(r"\b(?:SIN|NAS)\b|(?i:assurance sociale)")),
)


# The words of the cues above and the ids' own names, as written: the name detectors take a
# capitalised "Aadhaar" or "Personalausweisnummer" for a person (detect.py vetoes them).
ID_WORDS = frozenset((
    "Aadhaar", "Aadhar", "UIDAI", "PAN", "NINO", "NHS", "BSN", "Burgerservicenummer",
    "Sofinummer", "PESEL", "Codice", "Fiscale", "NIR", "INSEE", "DNI", "NIE", "NIF",
    "Personalausweis", "Personalausweisnummer", "Ausweis", "Ausweisnummer", "Reisepass",
    "Steuer-ID", "Steuer", "Steuer-Identifikationsnummer", "Steueridentifikationsnummer",
    "Identifikationsnummer", "IdNr", "SSN", "Personnummer", "Henkilötunnus", "Fødselsnummer",
    "CPF", "AHV", "AVS", "CNP", "SIN", "NAS"))


def _cued(text: str, start: int, end: int, cue: re.Pattern) -> bool:
    return bool(cue.search(text, max(0, start - _CUE_BEFORE), start)
                or cue.search(text, end, end + _CUE_AFTER))


def national_id_spans(text: str) -> list:
    """[(start, end)] of the national ids in text, first kind first where two overlap."""
    out: list = []
    for kind in KINDS:
        for m in kind.shape.finditer(text):
            start, end = m.span()
            if any(start < e and s < end for s, e in out):
                continue
            if kind.valid(m.group()) and (kind.cue is None or _cued(text, start, end, kind.cue)):
                out.append((start, end))
    return sorted(out)


def kinds_of(value: str) -> list:
    """The kinds whose shape and check `value` fits (a detected value's own kinds: a 9-digit
    number can pass both the Dutch BSN's 11-check and the Canadian SIN's Luhn)."""
    return [k for k in KINDS if k.shape.fullmatch(value) and k.valid(value)]


def fake_national_id(value: str, rng: random.Random) -> Optional[str]:
    """A number of the same kind, laid out like `value` (its separators and letter case) where
    the kind's fakes have its length, that passes every check `value` passes (so it is valid
    for whichever country the text meant); None when `value` is no known kind."""
    kinds = kinds_of(value)
    if not kinds:
        return None
    compact, fake = _compact(value), ""
    for _ in range(100):
        made = kinds[0].make(compact.upper(), rng)
        if len(made) != len(compact):  # a Faker-made fake of another layout: its own
            fake = made
        else:
            chars = iter(made)
            fake = "".join((next(chars).lower() if c.islower() else next(chars))
                           if c.isalnum() else c for c in value)
        if all(k.valid(fake) for k in kinds):
            break
    return fake
