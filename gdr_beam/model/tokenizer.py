"""Tokenizer and chat template, read from the checkpoint itself.

Byte-level BPE runs in the `tokenizers` library (the same Rust code HF uses), built from the
GGUF's vocab and merges, or loaded from a checkpoint directory's tokenizer.json. Pre-tokenizer
rules follow llama.cpp's definition of the pre-tokenizer the GGUF names
(`tokenizer.ggml.pre`, see llama.cpp src/llama-vocab.cpp): a list of regexes applied in turn,
each splitting the pieces of the previous one. The chat template is rendered with jinja2 in a
sandbox, the way HF renders it (loop controls, `tojson`, `strftime_now`: what Qwen3's and
Gemma's templates use).
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import gguf
import jinja2
import jinja2.sandbox
import tokenizers
from absl import logging
from tokenizers import decoders, models, pre_tokenizers

from gdr_beam.model.gguf_files import gguf_reader

_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
           r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
          r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# tokenizer.ggml.pre -> regexes, as llama.cpp applies them.
PRE_TOKENIZER_REGEXES = {
    "default": [_GPT2],
    "gpt-2": [_GPT2],
    "gpt2": [_GPT2],
    # StarCoder-family vocabularies (SmolLM among them) split every digit on its own first.
    "smollm": [r"\p{N}", _GPT2],
    "starcoder": [r"\p{N}", _GPT2],
    "refact": [r"\p{N}", _GPT2],
    "llama3": [_LLAMA3],
    "llama-bpe": [_LLAMA3],
    "qwen2": [_QWEN2],
}

# Token types in tokenizer.ggml.token_type (gguf.TokenType).
_CONTROL = int(gguf.TokenType.CONTROL)
_USER_DEFINED = int(gguf.TokenType.USER_DEFINED)

# End-of-turn markers of common chat formats; any present in the vocab also stops generation.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>",
                "<end_of_turn>", "<|end|>")


def _field(reader: gguf.GGUFReader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


class Tokenizer:
    """Text <-> ids, special tokens and the chat template of one checkpoint."""

    def __init__(self, backend: tokenizers.Tokenizer, *, eos_id: int, bos_id: Optional[int],
                 pad_id: Optional[int], add_bos: bool, chat_template: Optional[str],
                 extra_stop_ids: Sequence[int] = ()):
        self._backend = backend
        self.eos_id = eos_id
        self.bos_id = bos_id
        self.pad_id = eos_id if pad_id is None else pad_id
        self.add_bos = add_bos
        self.chat_template = chat_template
        self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
        stops = {eos_id, *extra_stop_ids}
        for marker in _END_OF_TURN:
            token_id = backend.token_to_id(marker)
            if token_id is not None:
                stops.add(token_id)
        self.stop_ids = frozenset(stops)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_gguf(cls, path_or_reader) -> "Tokenizer":
        reader = (path_or_reader if isinstance(path_or_reader, gguf.GGUFReader)
                  else gguf_reader(path_or_reader))
        kind = _field(reader, "tokenizer.ggml.model")
        if kind != "gpt2":
            raise ValueError(f"tokenizer model {kind!r} is not supported (only byte-level BPE, "
                             "tokenizer.ggml.model == 'gpt2')")
        pre = _field(reader, "tokenizer.ggml.pre", "default")
        if pre not in PRE_TOKENIZER_REGEXES:
            raise ValueError(f"pre-tokenizer {pre!r} is not supported; known: "
                             f"{sorted(PRE_TOKENIZER_REGEXES)}")
        tokens = _field(reader, "tokenizer.ggml.tokens")
        types = _field(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)
        merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges", [])]
        vocab = {t: i for i, t in enumerate(tokens)}
        backend = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges))
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(tokenizers.Regex(r), behavior="isolated")
             for r in PRE_TOKENIZER_REGEXES[pre]]
            + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        backend.decoder = decoders.ByteLevel()
        # Control and user-defined tokens are matched whole in the text, before BPE.
        backend.add_special_tokens([
            tokenizers.AddedToken(t, special=(ty == _CONTROL), normalized=False)
            for t, ty in zip(tokens, types) if ty in (_CONTROL, _USER_DEFINED)])
        eot = _field(reader, "tokenizer.ggml.eot_token_id")
        return cls(backend,
                   eos_id=_field(reader, "tokenizer.ggml.eos_token_id"),
                   bos_id=_field(reader, "tokenizer.ggml.bos_token_id"),
                   pad_id=_field(reader, "tokenizer.ggml.padding_token_id"),
                   add_bos=bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
                   chat_template=_field(reader, "tokenizer.chat_template"),
                   extra_stop_ids=() if eot is None else (eot,))

    @classmethod
    def from_hf_dir(cls, path: str) -> "Tokenizer":
        """A checkpoint directory with tokenizer.json (+ tokenizer_config.json)."""
        tokenizer_file = os.path.join(path, "tokenizer.json")
        if not os.path.exists(tokenizer_file):
            raise FileNotFoundError(f"{path}: no tokenizer.json")
        backend = tokenizers.Tokenizer.from_file(tokenizer_file)
        config = _read_json(os.path.join(path, "tokenizer_config.json"))
        model_config = _read_json(os.path.join(path, "config.json"))

        def token_id(name):
            token = config.get(name)
            if isinstance(token, dict):
                token = token.get("content")
            return None if token is None else backend.token_to_id(token)

        model_config = model_config.get("text_config") or model_config  # multimodal Gemma 3
        # End-of-turn ids: the checkpoint's generation config lists every id that ends a reply
        # (Gemma: <eos> and <end_of_turn>), the model config at least one.
        generation = _read_json(os.path.join(path, "generation_config.json"))
        ends = [i for source in (generation, model_config)
                for i in _as_list(source.get("eos_token_id"))]
        eos = token_id("eos_token")
        if eos is None and ends:
            eos = ends[0]
        if eos is None:
            raise ValueError(f"{path}: no eos_token in tokenizer_config.json or config.json")
        bos = token_id("bos_token")
        add_bos = config.get("add_bos_token")
        if add_bos is None:  # newer HF saves say it only in tokenizer.json's post-processor
            add_bos = bos is not None and backend.encode(
                "", add_special_tokens=True).ids[:1] == [bos]
        template = config.get("chat_template")
        template_file = os.path.join(path, "chat_template.jinja")  # where newer HF saves it
        if template is None and os.path.exists(template_file):
            with open(template_file, encoding="utf-8") as f:
                template = f.read()
        if template is None:  # a multimodal checkpoint's processor file (Gemma 3)
            template = _read_json(os.path.join(path, "chat_template.json")).get("chat_template")
        if isinstance(template, list):  # named templates: take the default one
            template = next((t["template"] for t in template if t.get("name") == "default"),
                            None)
        return cls(backend, eos_id=eos, bos_id=bos, pad_id=token_id("pad_token"),
                   add_bos=bool(add_bos), chat_template=template, extra_stop_ids=ends)

    # -- use --------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Ids of `text`; special tokens written in it (e.g. "<|im_start|>") are single ids.
        No BOS is added here (LanguageModel.encode adds it when the checkpoint asks)."""
        return self._backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> Optional[int]:
        return self._backend.token_to_id(token)

    def apply_chat_template(self, messages: Sequence[dict],
                            add_generation_prompt: bool = True) -> str:
        if not self.chat_template:
            raise ValueError("this checkpoint has no chat template; format prompts yourself")
        return _compile_template(self.chat_template).render(
            messages=list(messages), add_generation_prompt=add_generation_prompt,
            bos_token=self._token(self.bos_id), eos_token=self._token(self.eos_id))

    def _token(self, token_id: Optional[int]) -> str:
        return "" if token_id is None else (self._backend.id_to_token(token_id) or "")


def _as_list(value) -> list:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # As HF's filter: no HTML escaping (jinja's own tojson escapes <, >, &, ').
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(fmt):
    import datetime  # pylint: disable=import-outside-toplevel
    return datetime.datetime.now().strftime(fmt)


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


_TEMPLATES: dict[str, jinja2.Template] = {}


def _compile_template(source: str) -> jinja2.Template:
    # Same environment settings as HF's chat templating, so templates render identically.
    if source not in _TEMPLATES:
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        _TEMPLATES[source] = env.from_string(source)
        logging.debug("compiled chat template (%d chars)", len(source))
    return _TEMPLATES[source]
