"""--pii_policy: quasi-identifiers rewritten coherently (gdr_beam/tasks/pii/quasi.py), the
default policy untouched, and the flag plumbed. No model: the fallback and the verifier."""

import datetime
import re

import pytest

from gdr_beam.tasks import get_task
from pipelines import refine

QUASI_TEXT = ("On 12 March 2019 the board of Malu Paper Mills Ltd met in Leeds; the minutes say "
              "2019-03-12 and the invoice 12/03/2019. Vallourec SA joined in 2019. A 45-year-old "
              "engineer from Leeds chaired it; she works as an architect.")


def _changes(verification, text):
    return [(c["category"], text[c["start"]:c["end"]], c["replacement"])
            for c in verification.changes]


def test_quasi_rewrites_dates_places_orgs_and_ages_coherently():
    out = get_task("pii_quasi").fallback("doc-1", QUASI_TEXT, seed=0)
    changes = _changes(out, QUASI_TEXT)
    # One date written three ways: one shifted date, each in its own format.
    dates = {old: new for cat, old, new in changes if cat == "date"}
    assert set(dates) == {"12 March 2019", "2019-03-12", "12/03/2019"}
    shifted = {datetime.datetime.strptime(dates["12 March 2019"], "%d %B %Y").date(),
               datetime.datetime.strptime(dates["2019-03-12"], "%Y-%m-%d").date(),
               datetime.datetime.strptime(dates["12/03/2019"], "%d/%m/%Y").date()}
    assert len(shifted) == 1 and shifted != {datetime.date(2019, 3, 12)}
    # The bare year moves by the offset's whole years, as the date's year does.
    year = next(new for cat, _, new in changes if cat == "year")
    assert year == str(next(iter(shifted)).year) and year != "2019"
    # A town named twice: one fake for both, not the original.
    towns = [new for cat, old, new in changes if cat == "place" and old == "Leeds"]
    assert len(towns) == 2 and len(set(towns)) == 1 and "Leeds" not in out.text
    # Organisations keep their legal form; the distinctive words change, generic ones stay.
    orgs = {old: new for cat, old, new in changes if cat == "organization"}
    assert re.fullmatch(r"\w+ Paper Mills Ltd", orgs["Malu Paper Mills Ltd"])
    assert orgs["Vallourec SA"].endswith(" SA") and "Vallourec" not in out.text
    # An age moves by one to three years and keeps its shape.
    age = next(new for cat, _, new in changes if cat == "age")
    assert re.fullmatch(r"\d+-year-old", age) and 1 <= abs(int(age[:2]) - 45) <= 3
    # A profession tied to a person: another job title, its article agreeing.
    job = next(new for cat, _, new in changes if cat == "profession")
    assert re.fullmatch(r"(a [^aeiouAEIOU]|an [aeiouAEIOU]).*", job) and "architect" not in job
    # A date another segment's accepted rewrite moved sets the offset of all the others.
    fixed = get_task("pii_quasi").fallback("doc-1", QUASI_TEXT, seed=0,
                                           fixed={"12 March 2019": "20 April 2017"})
    assert "2017-04-20" in fixed.text and "20/04/2017" in fixed.text and " in 2017." in fixed.text
    # Reruns give the same text (seeded by run seed and example id).
    assert get_task("pii_quasi").fallback("doc-1", QUASI_TEXT, seed=0).text == out.text


def test_hipaa_keeps_years_and_caps_ages_over_89():
    text = "Admitted 3 May 2021, aged 93; born in 1931, the 45-year-old son visited. ZIP: 10001."
    out = get_task("pii_hipaa").fallback("doc-2", text, seed=0)
    assert "aged 90" in out.text and "45-year-old" in out.text and "1931" in out.text
    assert "3 May 2021" not in out.text and re.search(r"ZIP: 100\d\d\.", out.text) \
        and "10001" not in out.text


def test_default_policy_keeps_quasi_identifiers_and_its_prompt():
    """`direct` (the default) is today's task: quasi values stay byte for byte, no quasi
    category appears, and the prompt does not name them."""
    pii = get_task("pii")
    assert pii.fallback("doc-1", QUASI_TEXT, seed=0).text == QUASI_TEXT
    assert pii.name == "pii" and "every date" not in pii.messages("x")[0]["content"]
    assert "every date" in get_task("pii_quasi").messages("x")[0]["content"]


def test_quasi_verifier_fails_a_rewrite_that_keeps_a_quasi_value():
    text = "The 45-year-old moved to Leeds on 12 March 2019."
    kept_city = "The 47-year-old moved to Leeds on 2 May 2017."
    assert get_task("pii_quasi").review(text, kept_city).reason == "leaked_value"
    # Two dates moved by two offsets: incoherent; by one: accepted.
    two = "Hired 3 May 2019, reviewed on 2019-06-10 in Leeds."
    assert get_task("pii_quasi").review(
        two, "Hired 8 July 2017, reviewed on 2017-07-01 in Hull.").reason == "incoherent"
    assert get_task("pii_quasi").review(
        two, "Hired 8 July 2017, reviewed on 2017-08-15 in Hull.").accepted is not None
    assert get_task("pii").review(text, text).accepted is not None


def test_pii_policy_flag_is_plumbed():
    refine.parse_flags(["refine", "--input=in.jsonl", "--output_dir=out",
                        "--pii_policy=quasi"])
    job = refine.RefineJob.from_flags()
    assert job.pii_policy == "quasi" and refine.task_name(job) == "pii_quasi"
    refine.parse_flags(["refine", "--input=in.jsonl", "--output_dir=out"])
    assert refine.task_name(refine.RefineJob.from_flags()) == "pii"
    with pytest.raises(ValueError, match="--task=pii only"):
        refine.RefineJob(input="in.jsonl", output_dir="out", task="secrets", pii_policy="quasi")
