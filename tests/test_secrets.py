"""secrets: the gitleaks rule set loaded as data, what is left alone, format-true fakes."""

import base64
import glob
import json
import random
import re
import tempfile

import apache_beam as beam

from gdr_beam.beam.handler import JaxModelHandler
from gdr_beam.beam.refine import Refine
from gdr_beam.tasks import get_task, secret_fakes, secret_rules
from gdr_beam.tasks.secrets import detect

# Secret values are trufflehog / gitleaks-style test fixtures, not live credentials.
VENDOR = {
    "sendgrid": 'SENDGRID_API_KEY=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',
    "slack-webhook": 'url: "https://hooks.slack.com/services/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"',
    "digitalocean": 'DO_TOKEN = "dop_v1_3f7c2b9d1e8a4f6c0b5d7e9a1c3f5b7d9e1a3c5f7b9d1e3a5c7f9b1d3e5a7c9b"',
    "gcp": 'const key = "AIzaSyD4xQ7mN2pL9vR3kT8wY1zB6cF0hJ5gE2u";',
    "hf": 'HF_TOKEN: hf_kQ3wZ8xN5pL2mR7vT9yB4cF6hJ1gD0sAeU',
    "stripe": 'stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"',
}


def test_rules_load_from_the_shipped_config():
    rules = secret_rules.load()
    assert len(rules.rules) >= 200  # every regex compiled (load raises otherwise)
    # RE2 flag groups in the middle become scoped groups.
    assert secret_rules.re2_to_python(r"\b(p8e-(?i)[a-z0-9]{32})(?:x|$)") == \
        r"\b(p8e-(?i:[a-z0-9]{32}))(?:x|$)"
    assert secret_rules.re2_to_python(r"pat[[:alnum:]]{14}\z") == r"pat[a-zA-Z0-9]{14}\Z"


def test_vendor_formats_found_and_faked_in_format():
    task = get_task("secrets")
    for name, line in VENDOR.items():
        spans = detect(line)
        assert spans, name
        out = task.fallback(name, line, seed=0)
        for s in spans:
            assert s.value not in out.text, name
        for c in out.changes:
            old = line[c["start"]:c["end"]]
            new = c["replacement"]
            assert len(new) == len(old), name
            assert new[:3] == old[:3], name  # the vendor prefix
        assert not task.check(line, spans, out.text)[0], name


def test_lookalikes_left_alone():
    harmless = [
        '"integrity": "sha512-7HHrEK9QPM1qWlc4FVvU3aRK8f4dT5Cp0WU9pQZ9BftT8CMM1XgWOdbKAV1aRMz+4OR6y8aL7n9H8VQNEG3y0g=="',
        'source_code_hash = "kX1n0dF3mZr9Yb8vQ2pL7wT4sH6cJ5eA0uI3oN1gR8k="',
        'sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"',
        "FROM nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
        'request_id = "3fa85f64-5717-4562-b3fc-2c963f66afa6"',
        "rev: e83c5163316f89bfbde7d9ab23ca2e25604af290",
        'DATABASE_URL = "postgres://user:password@localhost:5432/app"',
        'api_key = "YOUR_API_KEY"',
        "ADMIN_PASSWORD=changeme",
        'aws_access_key_id = "AKIAIOSFODNN7EXAMPLE"',
        '{"kty": "RSA", "e": "AQAB", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}',
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END PUBLIC KEY-----",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ci@host",
    ]
    for text in harmless:
        assert detect(text) == [], text


def test_generic_assignments_heads_and_urls():
    # values gitleaks' generic rule cannot take ($, +, unquoted YAML), under its entropy limit
    for text, value in (("  easyinsightKey: 'poiuy76=a_$90ertgh0K',", "poiuy76=a_$90ertgh0K"),
                        ("svc:\n  api_key: Zx9+kQ2mN7pL4vR8tW1yB6c\n", "Zx9+kQ2mN7pL4vR8tW1yB6c")):
        assert [s.value for s in detect(text)] == [value], text
    assert detect("kms_key_arn: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd") == []
    rng = random.Random(0)
    # a vendor head read from the rules' regexes; digits stay digits
    assert secret_fakes.fake("NRAK-" + "a1b2c3d4e5" * 3, "generic-api-key", rng)[:5] == "NRAK-"
    assert secret_fakes.fake("9734741337193905126710251", "secret", rng).isdigit()
    # a URL's user-info password and a tenant's host label change, the vendor host stays
    new = secret_fakes.url("https://uQu9muaokn.webhook.office.com/webhookb2/a8IoQDUDl2x9", rng)
    assert new.startswith("https://") and ".webhook.office.com/webhookb2/" in new
    assert "uQu9muaokn" not in new and "a8IoQDUDl2x9" not in new
    assert secret_fakes.url("https://user.name:1234@db.host", rng).split("@")[0][-4:] != "1234"


def test_github_token_checksum_and_jwt_still_decodes():
    rng = random.Random(0)
    token = secret_fakes.github_token("ghp_", 36, rng)
    assert re.fullmatch(r"ghp_[0-9A-Za-z]{36}", token) and secret_fakes.github_checksum_ok(token)
    assert not secret_fakes.github_checksum_ok(token[:-1] + ("A" if token[-1] != "A" else "B"))

    jwt = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiaWF0IjoxNTE2MjM5MDIyfQ"
           ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
    text = f'Authorization = "Bearer {jwt}"'
    out = get_task("secrets").fallback("j", text, seed=1).text
    new = re.search(r"Bearer (\S+)\"", out).group(1)
    header, claims, signature = new.split(".")
    assert (header, claims) == tuple(jwt.split(".")[:2]) and signature != jwt.split(".")[2]
    assert json.loads(base64.urlsafe_b64decode(claims + "=="))["sub"] == "1234567890"


def test_pgp_block_keeps_armour_and_checksum():
    body = base64.b64encode(bytes(range(200))).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    crc = base64.b64encode(secret_fakes._crc24(bytes(range(200))).to_bytes(3, "big")).decode()
    text = ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n" + "\n".join(lines)
            + f"\n={crc}\n-----END PGP PRIVATE KEY BLOCK-----\n")
    out = get_task("secrets").fallback("k", text, seed=0).text
    assert out.startswith("-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n")
    assert out.endswith("-----END PGP PRIVATE KEY BLOCK-----\n")
    new_lines = out.splitlines()[3:-2]
    assert [len(x) for x in new_lines] == [len(x) for x in lines] and new_lines != lines
    data = base64.b64decode("".join(new_lines))
    new_crc = out.splitlines()[-2]
    assert new_crc == "=" + base64.b64encode(secret_fakes._crc24(data).to_bytes(3, "big")).decode()


class _NoModel(JaxModelHandler):
    """A handler that fails the job if the model is loaded or asked at all."""

    def load_model(self):
        raise AssertionError("the model was loaded")

    def run_inference(self, batch, model, inference_args=None):
        raise AssertionError("the model was asked")


def test_secrets_job_skips_the_model_pass():
    """use_model=False (measured: the 135M model's secrets rewrites almost never pass): the
    job refines every example with the fallback, never loads or asks the model."""
    assert get_task("secrets").use_model is False and get_task("toxicity").use_model
    records = [{"id": "s", "text": VENDOR["stripe"]}, {"id": "c", "text": "retries = 3\n"},
               {"id": "e", "text": ""}]
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline() as p:
            refined, dead = (p | beam.Create(records)
                             | Refine(task="secrets", model_handler=_NoModel(max_new_tokens=8),
                                      max_new_tokens=8))
            refined | "o" >> beam.Map(json.dumps) | "wo" >> beam.io.WriteToText(tmp + "/out")
            dead | "d" >> beam.Map(lambda d: d.id) | "wd" >> beam.io.WriteToText(tmp + "/dead")
        outs = {o["id"]: o for path in glob.glob(tmp + "/out*") for o in map(json.loads, open(path))}
        dead_ids = [line.strip() for path in glob.glob(tmp + "/dead*") for line in open(path)]
    assert dead_ids == ["e"]  # empty text: a dead letter from the read stage, as always
    assert (outs["s"]["verdict"], outs["s"]["model"]) == ("fallback", "")
    assert json.loads(outs["s"]["fallback_reasons"]) == ["model_skipped"]
    assert json.loads(outs["c"]["fallback_reasons"]) == []
    assert "sk_live_4eC39HqLyjWDarjtT1zdp7dc" not in outs["s"]["text"]
    assert outs["s"]["text"].startswith('stripe.api_key = "sk_live_')
    assert (outs["c"]["verdict"], outs["c"]["text"]) == ("unchanged", "retries = 3\n")
