"""Our tokenizer (built from the GGUF's own metadata) against an independent one: HF
transformers' GGUF tokenizer converter, on a corpus of tricky strings."""

import re

import pytest

from gdr_beam.model.tokenizer import PRE_TOKENIZER_REGEXES, Tokenizer

transformers = pytest.importorskip("transformers")

CORPUS = [
    "",
    "Hello world",
    "Hello 12345 world  !!  ü 😀",
    "3.14159, 1,000,000 and 0x1F; 2024-05-02 12:30:45",
    "Call +1 (555) 010-9999 or 0049 30 1234567",
    "  leading, trailing   ",
    "multiple   spaces\t\ttabs\n\nnewlines\r\n\r\nwindows",
    "def f(x):\n    return {'a': x ** 2}  # square\n\n\tif x != 0: pass",
    "I'm sure you're right; they'll go, we'd've, it's JOHN'S",
    "naïve café déjà vu Ünïcödé ß ø Å",
    "東京は日本の首都です。中文测试",
    "مرحبا بالعالم שלום עולם",
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷 keycap 1️⃣",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "text <|endoftext|> more",
    "a" * 200 + " " + "ab" * 50,
    "\u200b zero\u00a0width and nbsp",
    "SELECT * FROM users WHERE email LIKE '%@example.com';",
    "https://example.com/path?q=1&r=two#frag",
]


@pytest.fixture(scope="module")
def ours(embedded_model):
    # load_model's tokenizer is Tokenizer.from_gguf of the embedded file; the session's copy
    # saves another parse of the GGUF metadata, seconds each (tests/conftest.py).
    return embedded_model.tokenizer


@pytest.fixture(scope="module")
def reference(hf_reference_tokenizer):
    return hf_reference_tokenizer  # HF's converter on the same GGUF (tests/conftest.py)


@pytest.mark.parametrize("text", CORPUS)
def test_ids_match_reference(ours, reference, text):
    assert ours.encode(text) == reference(text, add_special_tokens=False).input_ids


@pytest.mark.parametrize("text", CORPUS)
def test_round_trip(ours, text):
    assert ours.decode(ours.encode(text), skip_special_tokens=False) == text


def test_smollm_digit_rule(ours):
    """llama.cpp's `smollm` pre-tokenizer splits every digit on its own before BPE: no token
    may hold two digits, and a digit never merges with a neighbouring letter or space."""
    text = "Order 1234567890 costs 99.95 EUR, ref A1B2C3, year 2024"
    for token_id in ours.encode(text):
        piece = ours.decode([token_id])
        assert len(re.findall(r"\d", piece)) <= 1, piece
        assert not re.search(r"\d", piece) or piece.strip() == piece and len(piece) == 1, piece
    assert PRE_TOKENIZER_REGEXES["smollm"][0] == r"\p{N}"


def test_special_tokens(ours, reference):
    assert ours.encode("<|im_start|>") == [reference.convert_tokens_to_ids("<|im_start|>")]
    assert ours.token_to_id("<|im_end|>") in ours.stop_ids
    assert ours.eos_id == reference.eos_token_id
    assert ours.decode(ours.encode("<|im_start|>user\nhi<|im_end|>")) == "user\nhi"
    assert not ours.add_bos


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "Hi!"}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Why?"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
     {"role": "user", "content": "c <|im_end|> d"}],
])
def test_chat_template_matches_reference(ours, reference, messages):
    want = reference.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert ours.apply_chat_template(messages) == want
    assert ours.apply_chat_template(messages, add_generation_prompt=False) == (
        reference.apply_chat_template(messages, tokenize=False, add_generation_prompt=False))


def test_from_hf_dir(tmp_path, ours, reference):
    reference.save_pretrained(tmp_path)
    loaded = Tokenizer.from_hf_dir(str(tmp_path))
    for text in CORPUS:
        assert loaded.encode(text) == ours.encode(text)
    assert loaded.eos_id == ours.eos_id and loaded.stop_ids == ours.stop_ids
    messages = [{"role": "user", "content": "Hi!"}]
    assert loaded.apply_chat_template(messages) == ours.apply_chat_template(messages)


def test_unknown_pre_tokenizer_is_a_clear_error(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = str(tmp_path / "tok.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("no-such-pre")
    writer.add_token_list(["a", "b"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="no-such-pre"):
        Tokenizer.from_gguf(path)
