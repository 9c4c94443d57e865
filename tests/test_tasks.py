"""The tasks' detectors, checks and fallbacks, without the model (the pipeline tests run it)."""

import ast
import re

import pytest

from gdr_beam.tasks import get_task
from gdr_beam.tasks.base import Span, diff_changes, peel, words_kept
from gdr_beam.tasks.pii import detect as detect_pii, iban_ok, luhn_ok
from gdr_beam.tasks.secrets import detect as detect_secrets
from gdr_beam.tasks.toxicity import detect as detect_toxic

CODE = '''import os

AWS_ACCESS_KEY_ID = "AKIAQYLPMN5HHHFPZAM2"
GITHUB_TOKEN = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
DB_URL = "postgres://admin:s3cr3tPass@db.example.com:5432/app"
password = "hunter2hunter2"
PRIVATE = """-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA1234567890abcdefghijABCDEFGHIJ
abcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFG=
-----END RSA PRIVATE KEY-----"""
retries = 3  # not a secret
'''


# --- shared machinery ---------------------------------------------------------------------------

def test_peel_strips_wrappers_only_at_the_edges():
    assert peel('Sure, here is the rewritten text:\n"Call Maya at 555-0147."') == \
        "Call Maya at 555-0147."
    assert peel("```python\nx = 1\n```") == "x = 1"
    assert peel("Text:\n<<<\nhello\n>>>") == "hello"
    quoted = '"Go," he said, "now"'
    assert peel(quoted) == quoted
    assert peel("Here is the agenda: item 1") == "Here is the agenda: item 1"


def test_words_kept_and_diff_changes():
    original = "Call Laura at 555-0134 about the budget."
    spans = [Span(5, 10, "person", "Laura"), Span(14, 22, "phone", "555-0134")]
    assert words_kept(original, spans, "Call Maya at 555-0147 about the budget.") == 1.0
    assert words_kept(original, spans, "Call Maya.") == pytest.approx(1 / 5)  # "call" of 5
    changes = diff_changes(original, "Call Maya at 555-0147 about the budget.", spans)
    assert [(c["category"], original[c["start"]:c["end"]], c["replacement"]) for c in changes] \
        == [("person", "Laura", "Maya"), ("phone", "555-0134", "555-0147")]


# --- pii ------------------------------------------------------------------------------------------

def test_pii_finds_names_addresses_and_phones_in_any_format():
    text = ("I'm Laura Chen, at 42 Baker Street, Springfield, IL 62704. Call 020 7946 0958 or "
            "(415) 555-0134, born on March 3, 1985. Laura will call John O'Neill.")
    found = {(s.category, s.value) for s in detect_pii(text)}
    assert {("person", "Laura Chen"), ("street_address", "42 Baker Street, Springfield, IL 62704"),
            ("phone", "(415) 555-0134"), ("date_of_birth", "March 3, 1985")} <= found
    assert any(c == "phone" and "7946" in v for c, v in found)
    assert ("person", "Laura") in found and ("person", "John O'Neill") in found
    # a short local number after a cue; the same words before a count are no phone
    assert [(s.category, s.value) for s in detect_pii(
        "I would like to stop receiving messages to 85 99 60")] == [("phone", "85 99 60")]
    assert detect_pii("Send 20 messages to 3 people") == []
    # a foreign national number whose local part libphonenumber (read as US) takes alone is
    # taken whole with its area code (numbers: libphonenumber's own examples for DE, RU, PK)
    for number in ("01512 3456789", "8 (301) 123-45-67", "0301 2345678"):
        assert [(s.category, s.value) for s in detect_pii(f"Call me at {number} tomorrow.")] \
            == [("phone", number)], number
    # an area code with its trunk 0 before a slash (Austria, Hungary); year ranges are no phone
    for number in ("02124/15868344", "(06)91/417-7763"):
        assert [(s.category, s.value) for s in detect_pii(f"Tel. {number} after six.")] \
            == [("phone", number)], number
    for text in ("the 2021-2022 season", "in 1998-2004 he lived there", "from 03/2021-2022 on",
                 "Due 01/02/2019 and 05/11 12:30."):
        assert detect_pii(text) == [], text


def test_pii_address_with_an_unknown_street_suffix_needs_a_unit_or_city_tail():
    # Model rewrites invent suffixes that are not USPS words ("Stadium", "Towers"); a unit or a
    # "City, ST 12345" tail still makes the span an address, not a person named "Ronald".
    for text, address in [
            ("The keys are at 48223 Ronald Stadium, Mount Union, ND 40057.",
             "48223 Ronald Stadium, Mount Union, ND 40057"),
            ("The keys are at 94565 John Towers Suite 428", "94565 John Towers Suite 428")]:
        found = {(s.category, s.value) for s in detect_pii(text)}
        assert found == {("street_address", address)}, text
    # A house number with a letter and a UK postcode tail: before, "Baker Street" and
    # "London" were taken for names and the fallback wrote "221B David Blair, Jessica NW1 6XE".
    text = "Send it to John Smith, 221B Baker Street, London NW1 6XE. Thanks."
    assert ("street_address", "221B Baker Street, London NW1 6XE") in \
        {(s.category, s.value) for s in detect_pii(text)}
    # A unit word is a whole word ("Fl" once opened "Floresside" and cut the span there), and
    # a unit the street's suffix pattern swallowed keeps its number ("Road\n Flat 287").
    for text, address in [
            ("The heating at 565 Amanda Estates, Floresside, NE 99551 is off.",
             "565 Amanda Estates, Floresside, NE 99551"),
            ("90 Scarcroft Road\n Flat 287\n Vancouver", "90 Scarcroft Road\n Flat 287")]:
        assert {(s.category, s.value) for s in detect_pii(text)} == {
            ("street_address", address)}, text
    assert "room 4B" in get_task("pii").fallback("x", "Meet in room 4B, Anna.", 0).text
    # Without such a tail a number and capitalised words are not an address.
    assert not [s for s in detect_pii("Invoice 8841 Paid in full. Room 12 Blue is free.")
                if s.category == "street_address"]
    # Australian and British types USPS lacks, street names in Greek letters; a postcode and
    # a country whose name ends like a Norwegian street type ("Austra-lia") are no street
    for text, address in [("Meet me at 43 Farrar Parade, KOOJAN, WA 6510, Australia",
                           "43 Farrar Parade"),
                          ("The bus drops you off at 26 Βρασίδα St.", "26 Βρασίδα St.")]:
        assert [(s.category, s.value) for s in detect_pii(text)] == [
            ("street_address", address)], text


def test_pii_names_hold_no_digits_or_field_labels_and_the_fallback_keeps_the_period():
    # spaCy's small model tags "Gate B12" and a form's "Email" label as persons.
    text = ("Gate B12 changed to C4. Name: Jennifer Jackson\nEmail: jj62@jackson.com\n"
            "Room: 3C. Parcel at 69338 Martinez Station.")
    found = {(s.category, s.value) for s in detect_pii(text)}
    assert found == {("person", "Jennifer Jackson"), ("email", "jj62@jackson.com"),
                     ("street_address", "69338 Martinez Station.")}
    out = get_task("pii").fallback("x", text, 0).text
    assert out.startswith("Gate B12 changed to C4. Name: ") and "\nEmail: " in out
    assert out.endswith(".") and not out.endswith("..")


def test_pii_finds_first_names_standing_alone_but_not_words_or_places():
    # Names the small NER model misses or calls an organisation at the start of a sentence.
    for text, name in [("Thanks Jodi! I forwarded your note.", "Jodi"),
                       ("Dustin said the keys are with the neighbour.", "Dustin"),
                       ("Can someone call Gary back? It is urgent.", "Gary"),
                       ("Thanks Rebecca! I forwarded your note.", "Rebecca")]:  # spaCy: GPE
        assert ("person", name) in {(s.category, s.value) for s in detect_pii(text)}, text
    # First names that are also English words, and names spaCy reads as places, are not.
    for text in ["Will you come to Paris in June?", "Hope all is well. Grace period ends soon.",
                 "Georgia and Virginia are states.", "Summer is here; Amber alerts were issued.",
                 "I flew to Austin last week."]:
        assert not [s for s in detect_pii(text) if s.category == "person"], text


def test_pii_name_run_into_a_phone_number_is_still_a_name():
    # spaCy's PERSON runs on into the number after it; the name must survive the overlap.
    found = detect_pii("Volunteer list: Marilyn Lowe - 256-440-5822; Alice Elliott - a@b.com.")
    assert [(s.category, s.value) for s in found] == [
        ("person", "Marilyn Lowe"), ("phone", "256-440-5822"), ("person", "Alice Elliott"),
        ("email", "a@b.com")]


def test_pii_name_spans_leave_possessives_and_role_words_outside():
    task = get_task("pii")
    out = task.fallback("ex-1", "Customer Dennis Boone paid. Update Laura Chen's file.", seed=0)
    assert out.text.startswith("Customer ") and "'s file." in out.text
    assert [c["category"] for c in out.changes] == ["person", "person"]
    assert "Dennis" not in out.text and "Chen" not in out.text
    # A leading word stays in the name when taking it out would leave one word.
    assert ("person", "Will Jones") in {(s.category, s.value)
                                        for s in detect_pii("Mark Smith and Will Jones met.")}


def test_pii_places_and_words_around_places_are_no_names():
    for text in ("The Princess Royal arrived at noon.", "Then the Danish government began.",
                 "Erlen bridge is falling down.", "He lives on the north side of Rue du Chapy.",
                 "These early shows on Luís Camões Street were important."):
        assert [s for s in detect_pii(text) if s.category == "person"] == [], text
    assert detect_pii("It opened in 2019 (2019-03-12) in Leeds.") == []  # a year and a date
    # a word no list knows after "in", "side of", "arrived at" is a town, not a name; a
    # postcode a label names is no phone
    for text in ("The title refers to Turjaška street in Monagri.",
                 "He lives on the north side of Mariatal.", "ZIP: 2560-401",
                 "The Princess Royal arrived at Sečovlje this morning.",
                 "It is a design agency based in Salmon Arm."):
        assert detect_pii(text) == [], text
    assert [s.value for s in detect_pii("I talked to Izaket yesterday")] == ["Izaket"]
    # an orchestra, a fund or a partnership is no person; a surname that is also a word stays
    for text in ("The Ramsey-Johnson Orchestra was founded in 1997.",
                 "VanEck Vectors Biotech ETF is a design agency",
                 "America First Multifamily Investors L.P. is a design agency"):
        assert detect_pii(text) == [], text
    assert [s.value for s in detect_pii("Anna Church called me")] == ["Anna Church"]
    found = detect_pii("Via Roma is where Paolo Rossi lives.")
    assert [(s.category, s.value) for s in found] == [("person", "Paolo Rossi")]
    # ... but a street-type word that is also a first name ("Calle", Carl), before a surname
    # with no house number or place word around it, is a name
    found = detect_pii("We need to add Calle Norberg as guardian.")
    assert [(s.category, s.value) for s in found] == [("person", "Calle Norberg")]
    assert detect_pii("We met on Calle Norberg last week.") == []


def test_pii_old_full_dates_are_birth_dates_only_in_a_text_about_a_birth():
    found = detect_pii("Please tell me your date of birth.\n\nIt's 10/17/1968. Sent 12/10/2023.")
    assert [(s.category, s.value) for s in found] == [("date_of_birth", "10/17/1968")]
    assert detect_pii("The band played on 10/17/1968.") == []


def test_pii_value_found_once_is_replaced_wherever_it_recurs():
    # The cue-less occurrences ("send a new one to ...", a name right after "India Ltd.",
    # a possessive running into a title) are found because the same value was found elsewhere.
    task = get_task("pii")
    text = ("Dear Mimir Andreasen,\n\nMimir is from State Trading Corporation of India Ltd. "
            "Mimir Andreasen's killers were sentenced. We read Mimir Andreasen's Cautionary "
            "Tales.\n\nAddress:\nWilgenblik 87\n3761 ZG Soest\n\nPlease send a new card to "
            "Wilgenblik 87, 3761 ZG Soest. Swift replies help; Andreasen will call.")
    out = task.fallback("ex-1", text, seed=0)
    assert "Mimir" not in out.text and "Andreasen" not in out.text
    assert "Wilgenblik" not in out.text
    fakes = {}
    for c in out.changes:
        fakes.setdefault(text[c["start"]:c["end"]], set()).add(c["replacement"])
    assert len(fakes["Wilgenblik 87"]) == 1 and len(fakes["Mimir Andreasen"]) == 1
    assert "'s killers" in out.text and "'s Cautionary Tales" in out.text
    # a name word that is also an English word is not taken at the start of a sentence
    found = detect_pii("Will Swift called. Swift replies help. Ask Swift today.")
    assert [s.value for s in found if s.category == "person"] == ["Will Swift", "Swift"]
    assert found[-1].start == len("Will Swift called. Swift replies help. Ask ")


def test_pii_name_run_partly_found_by_a_detector_is_replaced_whole():
    # A detector finds only the surname in "The Yumeka Sahaku version" (and "Ms. Christie");
    # the first name, found elsewhere in the document, must not survive beside it.
    task = get_task("pii")
    for text, first in [("Dear Yumeka Sahaku,\n\nWhat's your last name? Sahaku. The Yumeka "
                         "Sahaku version recorded for Genus plc was fine.", "Yumeka"),
                        ("Dear Cerys Christie,\n\nMs. Christie flew to Warszawa. A tribute to "
                         "Cerys Christie followed.", "Cerys")]:
        out = task.fallback("ex-1", text, seed=0)
        assert first not in out.text, out.text
        # ...and the name is still one person: its first name has one fake wherever it went
        fake_first = {c["replacement"].split()[0] for c in out.changes
                      if text[c["start"]:c["end"]].split()[0] == first}
        assert len(fake_first) == 1, out.changes


def test_pii_one_street_gets_one_fake_street_with_or_without_its_town_line():
    task = get_task("pii")
    text = ("How do I change my address to 13 Castor Place\nSelwyn Heights 3015 for post?\n\n"
            "I live at 13 Castor Place. Mrs. Majda Berločnik Suite 308, 202 Hammarby Allé")
    out = task.fallback("ex-1", text, seed=0)
    fakes = {text[c["start"]:c["end"]]: c["replacement"] for c in out.changes}
    assert fakes["13 Castor Place\nSelwyn Heights 3015"].split("\n")[0] \
        == fakes["13 Castor Place."].rstrip(".")
    # a street fixed by another segment's rewrite: its other forms keep that fake street
    fixed = task.fallback("ex-2", text, seed=0, fixed={"13 Castor Place.": "0234 Susan Road."})
    assert fixed.text.count("0234 Susan Road") == 2, fixed.text
    # the unit after a name is no surname: "Suite 308" stays beside the fake name
    assert "Majda Berločnik" in fakes and "Suite 308" in out.text


def test_pii_announced_names_are_names_even_when_also_words_or_towns():
    def persons(text):
        return [s.value for s in detect_pii(text) if s.category == "person"]
    assert persons("My name is Platt") == ["Platt"]
    assert persons("I'm so jealous! said Saber to Kasey") == ["Saber", "Kasey"]
    assert persons("For my take on Mrs. Pottinger, see the list.") == ["Pottinger"]
    # "said" announces a speaker only where the name ends the clause
    assert persons("She said Rainbow Bridge was closed.") == []
    # a list one of whose members is a person found alone is a list of people...
    assert persons("It is the brainchild of our 3 founders: Tomaszewski, Fiorentini and "
                   "Weress.") == ["Tomaszewski", "Fiorentini", "Weress"]
    # ...but its English words count only where half the list are people already
    assert "Apples" not in persons("I like Apples, Oranges and Pears said Anna.")
    assert persons("What's your name? Cerys Holt") == ["Cerys Holt"]
    assert persons("Her maiden name is Crnić") == ["Crnić"]
    assert persons("Everyone calls me Johannes") == ["Johannes"]
    assert persons("a film directed by Ann Lee and starring Tot") == ["Ann Lee", "Tot"]
    # a first name addressed at the start of a sentence, though also a town or a word
    assert persons("Helena, can I please speak to your boss?") == ["Helena"]
    assert persons("Lily, can I please speak to your boss?") == ["Lily"]
    assert persons("Georgia, can you hear me?") == []
    assert persons("As promised, here's Motochika's address: Via Scala 50") == ["Motochika"]
    # a surname found alone takes the unknown given name before it, not a greeting or demonym
    assert persons("The film was directed by Topi Sainio and Ann Lee.")[0] == "Topi Sainio"
    assert persons("Hello Sainio! Dear Sainio, the Polish Sainio team.") == ["Sainio"] * 3
    assert persons("Horizonte Minerals Plc is run by Hertzog.") == ["Hertzog"]
    # ...past name particles and initials, but not inside a longer capitalised run
    assert persons("Maybe it's under Frits van den Heuvel") == ["Frits van den Heuvel"]
    assert persons("the verses from Nermina F. Portič's Cautionary Tales") == ["Nermina F. Portič"]
    # "named him", "a man named"; a first name that is also a word, before a person's verb
    assert persons("She named him Yulan") == ["Yulan"]
    assert persons("I know a man named Saber who sings") == ["Saber"]
    assert persons("Phoebe lives on Vambola street.") == ["Phoebe"]
    assert persons("Hope lives on in us") == []
    # words after a name that only a person does, whatever the name looks like
    assert persons("Leigha lives on Kirchstrasse street.") == ["Leigha"]
    assert persons("Lily lives on Clasper Way street.") == ["Lily"]
    assert persons("Frits had given Vanda his address") == ["Frits", "Vanda"]
    assert persons("It had given Sandra a fright") == ["Sandra"]
    assert persons("Evil lives in every heart.") == []
    # an unknown name addressed at the start of a sentence (spaCy tags "Maile" an adverb)
    assert persons("Maile, can I please speak to your boss?") == ["Maile"]
    # list members in any Latin letters
    assert persons("our 3 founders: Hertzog, Štavbar and Laine.") == [
        "Hertzog", "Štavbar", "Laine"]
    # the speakers of a dialogue one of whom is a person ("Quarto" is also a word and a town)
    assert persons("Quarto: What a wife.\nMaret: Remember me, Sanela?\nIolanda: You saved my "
                   "life!") == ["Quarto", "Maret", "Sanela", "Iolanda"]
    # a form's labels in any language are no speakers, no names
    assert persons("Fødselsnummer: 151086 95088\nKundenummer: 20931") == []


def test_pii_fallback_keeps_one_fake_per_person_and_valid_formats():
    task = get_task("pii")
    text = ("Laura Chen paid with 4111 1111 1111 1111 from IBAN DE89 3704 0044 0532 0130 00. "
            "Laura Chen lives at 42 Baker Street. Ms. Chen said Laura is away.")
    out = task.fallback("ex-1", text, seed=3)
    assert out.verdict == "fallback"
    assert "Laura" not in out.text and "Chen" not in out.text and "Baker" not in out.text
    people = [c["replacement"] for c in out.changes if c["category"] == "person"]
    first, last = people[0].split()
    assert people[1] == people[0]  # the same person, the same fake name
    assert f"Ms. {last}" in out.text and f"said {first}" in out.text
    card = next(c["replacement"] for c in out.changes if c["category"] == "credit_card")
    iban = next(c["replacement"] for c in out.changes if c["category"] == "iban")
    assert luhn_ok(card) and re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}", card)
    assert iban_ok(iban) and iban.startswith("DE") and len(iban) == len("DE89 3704 0044 0532 0130 00")
    assert not re.search(r"<[A-Z]+>|\[[A-Z]+\]", out.text)
    assert task.fallback("ex-1", text, seed=3) == out  # deterministic per (seed, example)
    assert task.fallback("ex-2", text, seed=3).text != out.text


def test_pii_review_reasons():
    task = get_task("pii")
    original = "Call me at 415-555-0134 about the quarterly budget review tomorrow."
    assert task.review(original, original).reason == "leaked_value"
    assert task.review(original, "Call me at 312-555-0199.").reason == "content_lost"
    assert task.review(original, original.replace("415-555-0134", "<PHONE>")).reason == \
        "placeholder"
    assert task.review(original, original.replace("415-555-0134", "312-555-0199")
                       + " Or mail bob@corp.com.").reason == "new_sensitive"
    assert task.review(original, original.replace("415-555-0134", "312-555-0199")
                       + " And more words." * 10).reason == "content_added"
    good = task.review(original, original.replace("415-555-0134", "312-555-0199"))
    assert good.accepted.verdict == "rewritten"
    assert good.accepted.changes[0]["category"] == "phone"
    assert task.review("Bring the report.", "Bring the report").accepted.verdict == "unchanged"


def test_pii_finds_international_addresses_blocks_and_po_boxes():
    cases = [("Send it to Favoritenstrasse 36, 1100 Wien.", "Favoritenstrasse 36"),
             ("Our office: 96 rue de Penthièvre, 75008 Paris", "96 rue de Penthièvre"),
             ("Meet me at Via dalla Staziun 87 tomorrow", "Via dalla Staziun 87"),
             ("The shop is on Nánási út 79 in Budapest", "Nánási út 79"),
             ("Jana Nowak\nul. Polna 5\n00-625 Warszawa", "ul. Polna 5"),
             ("Address:\nDemocracia 4098\n60010 Piñera\nUruguay", "Democracia 4098"),
             ("Mail it to P.O. Box 255 please.", "P.O. Box 255"),
             ("PSC 1234, Box 5678\nAPO AE 09012", "PSC 1234, Box 5678\nAPO AE 09012"),
             # words before the street on its line are not the street's
             ("What is your address? it is Atamaria 86\n36847 Fornelos de Montes",
              "Atamaria 86"),
             ("The bus drops you off at 27 Löberöd St.", "27 Löberöd St."),
             # a unit line below the street confirms it; an initial in a street's name
             ("??? 77 Spittelwiese\n??? Unit 82\n??? Reykjavík", "77 Spittelwiese"),
             ("42 Ποσειδώνος\n Floor 152\n PADASJOKI", "42 Ποσειδώνος\n Floor 152"),
             ("??? 104 N. Nikodimou Street\n??? Suite 166", "104 N. Nikodimou Street"),
             # a house number and a street no list knows before a comma and a town
             ("We'll meet Friday at Qado Energy Inc., 82 Mariatal, Brakpan", "82 Mariatal")]
    for text, address in cases:
        found = {(s.category, s.value) for s in detect_pii(text)}
        assert ("street_address", address) in found, (text, found)
    # the town under a street and its unit line is no person
    assert [s.category for s in detect_pii("??? 77 Spittelwiese\n??? Unit 82\n??? Reykjavík")] \
        == ["street_address"]
    # a postcode and town before a country are not a house number and street
    found = detect_pii("Send it to 809, rue de Blanc, 1124 Cite Des Andalous, Tunisia?")
    assert "1124 Cite Des Andalous" not in {s.value for s in found}
    # A number beside a capitalised word is not an address without a street word or context.
    for text in ["Chapter 12 Summary follows.", "We met at 5 PM on Friday.",
                 "Version 3 Release notes are out."]:
        assert not [s for s in detect_pii(text) if s.category == "street_address"], text


def test_pii_finds_names_no_list_knows_and_keeps_initials():
    for text, name in [("Izaket, can I please speak to your boss?", "Izaket"),
                       ("She named him Auriville", "Auriville"),
                       ("Gojislav: You saved my life!", "Gojislav"),
                       ("My name is Toby", "Toby"),
                       # a street-type ending many first names share (Norwegian "-lia")
                       ("Natalia called yesterday.", "Natalia"),
                       ("Don't go to town, Tuulia!", "Tuulia"),
                       # a postcode-opened town line that runs on into prose ends at its
                       # sentence: what follows is no town
                       ("Meet me at Wilgenblik 87\n3761 ZG Soest. I just turned 37. I'm so "
                        "jealous! said Yoshka to Karen.", "Karen")]:
        assert ("person", name) in {(s.category, s.value) for s in detect_pii(text)}, text
    # a town right after an address and a comma is the address's town, not a person
    for text in ("I live in Storgata 12, Oslo.", "Send it to Wilgenblik 87, 3761 ZG Soest."):
        assert [s.category for s in detect_pii(text)] == ["street_address"], text
    assert [s.value for s in detect_pii("Meet me at Mannerheimintie 5, Helsinki.")] == \
        ["Mannerheimintie 5"]
    for text in ["Summer is here; Amber alerts were issued.", "Will you come to Paris in June?",
                 "The Turkish Government replied to the Court."]:
        assert not [s for s in detect_pii(text) if s.category == "person"], text
    out = get_task("pii").fallback("x", "Mr B. Nowak met Rebecca A. Hides.", seed=0).text
    assert re.fullmatch(r"Mr [A-Z]\. \S+ met \S+ [A-Z]\. \S+\.", out), out
    assert "Nowak" not in out and "Hides" not in out


def test_pii_personal_urls_and_handles_but_not_documentation_links():
    found = {(s.category, s.value) for s in detect_pii(
        "Website: https://www.BuyingShow.uy. Ping @jane_doe; docs: https://docs.python.org/3/")}
    assert ("url", "https://www.BuyingShow.uy") in found and ("handle", "@jane_doe") in found
    assert not any("python.org" in v for _, v in found)
    # a role account is an organisation's desk, not a person's address
    found = {s.value for s in detect_pii("From: sandra.davis@gmail.com\nTo: support@example.org, "
                                         "no-reply@acme.com")}
    assert found == {"sandra.davis@gmail.com"}, found


def test_pii_rewrite_may_change_only_the_detected_values():
    task = get_task("pii")
    original = ("Hi, I am Laura Chen, the manager. Call me at (415) 555-0134 on 3 March 2020. "
                "She said the office in Leeds is closed.")
    good = original.replace("Laura Chen", "Omar Haddad").replace("(415) 555-0134",
                                                                  "(312) 555-0147")
    assert task.review(original, good).accepted.verdict == "rewritten"
    # agreement with a fake of another gender, and punctuation, are explained
    assert task.review(original, good.replace("She said", "He said").replace(". Call", "; call")
                       ).accepted is not None
    for bad, edit in [(good.replace("manager", "director"), "'manager' to 'director'"),
                      (good.replace("3 March 2020", "5 March 2020"), "'3' to '5'"),
                      (good.replace("Leeds", "York"), "'Leeds' to 'York'"),
                      (good.replace(" in Leeds", ""), "deleted 'in Leeds'")]:
        review = task.review(original, bad)
        assert review.reason == "content_changed" and edit in review.detail, (bad, review)
    # a number's fake that another number detector claims is still its replacement (a card
    # failing Luhn reads as a phone), but an invented number is new
    original = "What is the limit for card 340903217300866?"
    faked = original.replace("340903217300866", "340903217307576")
    assert task.review(original, faked).accepted.verdict == "rewritten"
    review = task.review(original, faked.replace("?", ", or call 415-555-0199?"))
    assert review.reason == "new_sensitive", review
    # a name word kept where the name was is a leak, though the whole name is gone
    original = "Please send the invoice to John Smith today."
    review = task.review(original, original.replace("Smith", "Edwards"))
    assert review.reason == "leaked_value", review
    assert task.review(original, original.replace("John Smith", "Paul Edwards")).accepted
    # a possessive carried by the name's last word is part of the replaced value
    original = "Five failed attempts on Cameron White's account."
    good = original.replace("Cameron White", "Gary Stokes")
    assert task.review(original, good).accepted.verdict == "rewritten"
    review = task.review(original, good.replace("account", "house"))
    assert review.reason == "content_changed" and "house" in review.detail, review


def test_pii_fallback_fakes_are_coherent(monkeypatch):
    from gdr_beam.tasks.pii.gazetteers import first_name_genders
    task = get_task("pii")
    text = ("Hi, I'm Kayla Bell, reach me at kayla.bell94@hotmail.com. Dr. Laura Wilkinson and "
            "John Park met; Laura said her office is closed. Ms. Bell left.")
    out = task.fallback("ex-1", text, seed=0)
    fakes = {text[c["start"]:c["end"]]: c["replacement"] for c in out.changes}
    first, last = fakes["Kayla Bell"].split()
    # the e-mail built from the name follows the fake name; the title keeps the surname
    assert fakes["kayla.bell94@hotmail.com"].startswith(f"{first.lower()}.{last.lower()}")
    assert fakes["kayla.bell94@hotmail.com"].endswith("@hotmail.com")
    assert f"Ms. {last} left" in out.text
    # "Dr. Laura Wilkinson": Laura stays a first name, of the same gender
    laura = fakes["Laura Wilkinson"].split()[0]
    assert f"{laura} said her office" in out.text
    assert first_name_genders().get(laura) == "female"
    # one fake per person, never shared
    people = [fakes[p] for p in ("Kayla Bell", "Laura Wilkinson", "John Park")]
    assert len(set(people)) == 3
    # a first name no list knows keeps the gender its title or pronoun tells, and gets a
    # name given to both genders when nothing does: its ending is only a guess ("Vehbija" is
    # a man), which the fallback does not bet a fake on
    from gdr_beam.tasks.pii.gazetteers import neutral_first_names
    text = ("Mrs. Kisuke Tanaka met Gregorina Tórrez.\n\nTenzin Ito phoned; he was late.\n\n"
            "Patrice Dubois, 41, paid. Vehbija Hodžić signed.")
    out = task.fallback("ex-3", text, seed=0)
    fakes = [c["replacement"].split()[0] for c in out.changes]
    assert [first_name_genders().get(f) for f in fakes[:3:2]] == ["female", "male"]
    assert all(f in neutral_first_names() for f in (fakes[1], fakes[3], fakes[4])), fakes
    assert task.review(text, out.text).accepted is not None
    # the verifier still reads the ending: a model's man's name for "Gregorina" fails
    review = task.review(text, out.text.replace(fakes[1] + " ", "Robert ", 1))
    assert review.accepted is None and review.reason == "gender_changed", review
    # pronouns that disagree across a document's mentions tell nothing ("Tenzin ... he",
    # later "Tenzin ... she": another sentence's subject)
    text = ("Tenzin Ito phoned; he was late.\n\nWe met Tenzin Ito at noon. She moved here "
            "from Austria.")
    from gdr_beam.tasks.pii.identities import gender_cues
    people = [s for s in detect_pii(text) if s.category == "person"]
    assert len(people) == 2 and gender_cues(text, people) == {}
    assert gender_cues(text.replace("She", "He"), people) == {"Tenzin": "male"}
    # an address keeps its country's style
    polish = task.fallback("ex-2", "Jana Nowak\nul. Polna 5\n00-625 Warszawa", seed=0).text
    assert "\n00-625 Warszawa" in polish and "Polna" not in polish
    assert re.search(r"^(?:ul\.|ulica|al\.|aleja|plac|pl\.) ", polish.split("\n")[1]), polish
    # ... and its town line stays a town, after a postcode too ("an der Ilm" is no person)
    german = task.fallback("ex-4", "Send it to Anna Weber, Hahngasse 74/46\n16607 Pfaffenhofen "
                           "an der Ilm.", seed=0).text
    assert german.endswith("\n16607 Pfaffenhofen an der Ilm.") and "Hahngasse" not in german
    # a woman's fake is never a name the lists give to men (Faker's women's list has "Robin"):
    # declare this draw's name a man's, and the draw moves past it
    from gdr_beam.tasks.pii import identities
    spans = detect_pii("Deanna King agreed.")
    drawn = identities.IdentityMap(0, "ex", "Deanna King agreed.", spans).person_token("Deanna")
    monkeypatch.setattr(identities, "first_name_genders",
                        lambda: {**first_name_genders(), drawn: "male"})
    redrawn = identities.IdentityMap(0, "ex", "Deanna King agreed.", spans).person_token("Deanna")
    assert redrawn != drawn and first_name_genders().get(redrawn) != "male", (drawn, redrawn)
    # an e-mail of initial + surname follows the fake's initial too
    out = task.fallback("ex-6", "Kayla Morris asked us to e-mail kmorris@hotmail.com.", seed=0)
    first, last = out.text.split(" asked")[0].split()
    assert f"{first[0].lower()}{last.lower()}@hotmail.com" in out.text, out.text
    # a phone keeps its country: calling code, "(0)" trunk prefix, a national number's 0
    for number, head in (("+44(0)808 1570322", "+44(0)"), ("+4420 7496 0150", "+44"),
                         ("+353 1 234 5678", "+353 "), ("020 7946 0018", "0")):
        out = task.fallback("ex-5", f"Call Anna Weber on {number} today.", seed=0).text
        fake = out.split(" on ")[1][:-len(" today.")]
        assert fake.startswith(head) and fake != number and len(fake) == len(number), out


def test_pii_rewrite_may_not_swap_places_or_other_words_for_fakes():
    task = get_task("pii")
    original = "Laura Chen moved to Lisboa last year; the Louvre is her favourite museum."
    good = original.replace("Laura Chen", "Maya Torres")
    assert task.review(original, good).accepted is not None
    for swapped in ("Lisboa", "Louvre"):
        review = task.review(original, good.replace(swapped, "North Nicholas"))
        assert review.accepted is None, swapped


def test_pii_rewrite_must_keep_the_gender_of_a_first_name():
    task = get_task("pii")
    text = "Christine Olsen called; she will send the form to Dennis Boone."
    flipped = task.review(text, "Joshua Gonzalez called; she will send the form to Mark Hill.")
    assert flipped.accepted is None and flipped.reason == "gender_changed", flipped
    kept = task.review(text, "Maria Gonzalez called; she will send the form to Mark Hill.")
    assert kept.accepted is not None, kept


def test_pii_rewrite_must_be_an_identity_map():
    task = get_task("pii")
    original = "Laura Chen called John Park. Later Laura Chen left."
    assert task.review(original, "Maya Torres called Omar Haddad. Later Maya Torres left."
                       ).accepted is not None
    assert task.review(original, "Maya Torres called Maya Torres. Later Maya Torres left."
                       ).reason == "incoherent"
    assert task.review(original, "Maya Torres called Omar Haddad. Later Nina Ray left."
                       ).reason == "incoherent"


# --- secrets --------------------------------------------------------------------------------------

def test_secrets_detects_each_kind_and_not_code():
    found = {(s.category, s.value) for s in detect_secrets(CODE)}
    values = {v for _, v in found}
    assert {"AKIAQYLPMN5HHHFPZAM2", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "s3cr3tPass",
            "hunter2hunter2"} <= values
    assert any(c == "private_key" and v.startswith("MIIEow") for c, v in found)
    assert not any(v in ("retries", "3", "os", "admin", "db.example.com") for v in values)
    assert detect_secrets("def add(a, b):\n    return a + b  # simple\n") == []


def test_secrets_fallback_keeps_format_and_valid_python():
    task = get_task("secrets")
    out = task.fallback("f.py", CODE, seed=0)
    ast.parse(out.text)  # still valid Python
    fakes = {c["category"]: c["replacement"] for c in out.changes}
    for s in detect_secrets(CODE):
        assert s.value not in out.text
    aws = next(c["replacement"] for c in out.changes if c["replacement"].startswith("AKIA"))
    assert re.fullmatch(r"AKIA[0-9A-Z]{16}", aws)
    gh = next(c["replacement"] for c in out.changes if c["replacement"].startswith("ghp_"))
    assert len(gh) == len("ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789")
    assert "-----BEGIN RSA PRIVATE KEY-----" in out.text  # the markers stay, the body changes
    assert fakes["private_key"].count("\n") == 1  # the body's line breaks stay
    assert "retries = 3  # not a secret" in out.text


def test_secrets_review_rejects_broken_code():
    task = get_task("secrets")
    fixed = task.fallback("f.py", CODE, seed=0).text
    assert task.review(CODE, fixed).accepted.verdict == "rewritten"
    broken = fixed.replace('AWS_ACCESS_KEY_ID = "', 'AWS_ACCESS_KEY_ID = ')
    assert task.review(CODE, broken).reason == "invalid_code"
    assert task.review(CODE, CODE).reason == "leaked_value"


# --- toxicity -------------------------------------------------------------------------------------

def test_toxicity_detects_profanity_insults_threats():
    found = {(s.category, s.value.lower()) for s in detect_toxic(
        "You are a fucking idiot and this sh1t is broken. I will kill you.")}
    assert {("profanity", "fucking"), ("insult", "idiot"), ("profanity", "sh1t"),
            ("threat", "i will kill you")} <= found
    assert detect_toxic("Thanks, the class assistant fixed the build.") == []


def test_toxicity_fallback_and_rejection():
    task = get_task("toxicity")
    out = task.fallback("m1", "You are a fucking idiot, the build broke again because of you.", 0)
    assert out.verdict == "fallback"
    assert out.text == "You are unkind, the build broke again because of you."
    assert not detect_toxic(out.text)
    abuse = task.fallback("m2", "fuck you idiot", 0)
    assert abuse.verdict == "rejected" and abuse.reason == "only_abuse"
    review = task.review("This is shit, fix the login page.",
                         "This is fucked, fix the login page.")
    assert review.reason == "still_toxic"
    assert task.review("This is shit, fix the login page.",
                       "This is bad, fix the login page.").accepted.verdict == "rewritten"


# --- a user's own task ------------------------------------------------------------------------

def test_custom_task_example():
    import examples.custom_task  # noqa: F401  (registers "tickets")
    task = get_task("tickets")
    text = "Fixed in JIRA-1234, see also OPS-77 and JIRA-1234 again."
    out = task.fallback("t1", text, seed=0)
    assert out.verdict == "fallback" and "JIRA-1234" not in out.text and "OPS-77" not in out.text
    fake = out.changes[0]["replacement"]
    assert re.fullmatch(r"JIRA-\d{5}", fake) and out.text.count(fake) == 2  # consistent
    assert task.review(text, text).reason == "leaked_value"
    assert task.review(text, "Fixed in JIRA-55555, see also OPS-12345 and JIRA-55555 again."
                       ).accepted.verdict == "rewritten"
    assert "Your previous answer was rejected: leaked" in \
        task.messages(text, feedback="leaked")[0]["content"]
