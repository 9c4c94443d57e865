"""National ids beyond the US SSN: found with checksums and cues, faked valid and in kind.

Fast (no model, no NER). The numbers are python-stdnum's documented examples and the fakes are
checked with python-stdnum's validators, not with the code that made them.
"""

import random
import re

import pytest
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

from gdr_beam.tasks.pii import detect, fake_value
from gdr_beam.tasks.pii.national_ids import national_id_spans


def _found(text):
    return [text[s:e] for s, e in national_id_spans(text)]


def _icao_ok(number):  # ICAO 9303 check digit, written apart from the module's
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in number[:9]]
    return sum(v * w for v, w in zip(values, [7, 3, 1] * 3)) % 10 == int(number[9])


def _nino_ok(number):
    compact = number.replace(" ", "")
    return re.fullmatch(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]?", compact) is not None \
        and compact[:2] not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")


# (sentence, the id in it, a validator of the same country's kind)
CASES = [
    ("National Insurance number: AB 12 34 56 C.", "AB 12 34 56 C", _nino_ok),
    ("NINO ZZ 812865 T on file", "ZZ 812865 T", _nino_ok),  # Faker's placeholder shape
    ("Steuer-ID 36 574 261 809, Klasse 3", "36 574 261 809", idnr.is_valid),
    ("Personalausweis T220001293", "T220001293", _icao_ok),
    ("PESEL No.44051401359", "44051401359", pesel.is_valid),
    ("codice fiscale rccmnl83s18d969h.", "rccmnl83s18d969h", codicefiscale.is_valid),
    ("NIR 2 95 10 99 126 111 93", "2 95 10 99 126 111 93", nir.is_valid),
    ("n° 253072B07300470", "253072B07300470", nir.is_valid),
    ("DNI 54362315-K", "54362315-K", dni.is_valid),
    ("Mi NIE es x-2482300w.", "x-2482300w", nie.is_valid),
    ("BSN: 1112.22.333", "1112.22.333", bsn.is_valid),
    ("NHS number 943 476 5870", "943 476 5870", nhs.is_valid),
    ("Aadhaar: 2341 2341 2346", "2341 2341 2346", aadhaar.is_valid),
    ("PAN ACUPA7085R", "ACUPA7085R", pan.is_valid),
    ("personnummer 880320-0016", "880320-0016", personnummer.is_valid),
    ("Mitt personnummer är 8803200016", "8803200016", personnummer.is_valid),
    ("HETU 131052a308t", "131052a308t", hetu.is_valid),
    ("fødselsnummer 151086 95088", "151086 95088", fodselsnummer.is_valid),
    ("NISS 85.07.30-033 28", "85.07.30-033 28", be_nn.is_valid),
    ("CPF 390.533.447-05", "390.533.447-05", cpf.is_valid),
    ("AHV 756.9217.0769.85", "756.9217.0769.85", ch_ssn.is_valid),
    ("rodné číslo 710319/2745", "710319/2745", rc.is_valid),
    ("RIC 360426199101010071", "360426199101010071", ric.is_valid),
    ("CNP 1630615123457", "1630615123457", cnp.is_valid),
    # passes the SIN's Luhn and the BSN's 11-check: the fake passes both
    ("SIN 123-456-782", "123-456-782", lambda v: sin.is_valid(v) and bsn.is_valid(v)),
]


@pytest.mark.parametrize("text,value,valid", CASES)
def test_national_id_found_and_faked_valid_in_its_own_layout(text, value, valid):
    assert _found(text) == [value]
    rng = random.Random(0)
    for _ in range(5):
        fake = fake_value("national_id", value, rng)
        assert fake != value and valid(fake), (value, fake)
        # separators where they were, letter case kept
        assert re.sub(r"[A-Za-z0-9]", "x", fake) == re.sub(r"[A-Za-z0-9]", "x", value)
        assert all(f.islower() == v.islower() for f, v in zip(fake, value)
                   if f.isalpha() and v.isalpha())


def test_national_id_sex_kept_where_the_number_says_it():
    rng = random.Random(1)
    for value, sex in (("44051401359", pesel.get_gender),
                       ("RCCMNL83S18D969H", codicefiscale.get_gender),
                       ("CNTCHR83T41D969D", codicefiscale.get_gender)):
        for _ in range(5):
            assert sex(fake_value("national_id", value, rng)) == sex(value)
    assert fake_value("national_id", "2 95 10 99 126 111 93", rng)[0] == "2"


@pytest.mark.parametrize("text", [
    "order 111222333 shipped",              # a BSN's 11-check passes, but no cue
    "code ACUPA7085R in the catalogue",     # PAN shape, no cue
    "part AB123456C",                       # NINO shape, no cue
    "ref T220001293",                       # Personalausweis shape, no cue
    "call 943 476 5870",                    # NHS check passes, no cue
    "PESEL 44051401358",                    # wrong check digit
    "DNI 54362315Z",                        # wrong check letter
    "DNI 10000012 a week",                  # "10000012A" would be valid; a word is no letter
    "mobile 07700900126",                   # a PESEL "born in 2277"
    "Steuer-ID 36554266806",                # digit rule broken
    "Aadhaar card 4111 1111 1111 2341 2341 2346",  # inside a longer run of digits
    "ISBN 9780471117094",                   # 13 digits, no CNP cue
    "EAN 7569217076985",                    # an AHV number's digits, no cue
    "call 123-456-782",                     # SIN's Luhn passes, no cue
    "call 8803200016",                      # a personnummer's digits, no cue
])
def test_national_id_precision(text):
    assert _found(text) == []


def test_national_ids_win_over_cards_phones_and_keep_ssn():
    # This NIR also passes Luhn, this PESEL looks like a phone number; a US SSN stays `ssn`.
    text = "NIR 1 41 58 68 344 978 91, PESEL 44051401359, SSN 536-90-4399."
    found = {(s.category, s.value) for s in detect(text, names=False)}
    assert found == {("national_id", "1 41 58 68 344 978 91"), ("national_id", "44051401359"),
                     ("ssn", "536-90-4399")}


def test_verifier_wants_a_valid_id_from_the_model():
    from gdr_beam.tasks import get_task
    task = get_task("pii")
    text = "Mi DNI es 12345678Z, gracias por la ayuda."
    assert dni.is_valid("12345678Z") and not dni.is_valid("87654321A")
    bad = task.review(text, text.replace("12345678Z", "87654321A"))
    assert bad.accepted is None and bad.reason == "invalid_fake"
    fake = task.fallback("p", text, 0).text  # the fallback's own fake is a valid DNI
    good = task.review(text, fake)
    assert good.reason != "invalid_fake" and dni.is_valid(re.search(r"\d{8}[A-Z]", fake).group())
