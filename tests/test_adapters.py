"""Adapters shipped in the package: naming, the auto rule, and that each adapter refines.

The quality checks run the real embedded model with and without a shipped adapter on texts it
was not trained on (pii: held-out synthetic frames; toxicity: sentences written here, not
tweets) and ask the task's own verifier.
"""

import os

import pytest

import gdr_beam
from gdr_beam.adapt.synthetic import pii_examples
from gdr_beam.adapters import SHIPPED, adapter_path, auto_adapter, shipped_path
from gdr_beam.tasks import get_task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_adapter_specs():
    assert adapter_path(None) is None and adapter_path("none") is None and adapter_path("") is None
    assert adapter_path("gs://bucket/run") == "gs://bucket/run"
    assert adapter_path("shipped:pii") == shipped_path("pii")
    assert adapter_path("shipped:toxicity") == shipped_path("toxicity")
    with pytest.raises(ValueError, match="no adapter is shipped for task 'secrets'"):
        adapter_path("shipped:secrets")
    with pytest.raises(ValueError, match="auto_adapter"):
        adapter_path("auto")
    # auto: only for the weights the adapter was trained on (the embedded default).
    assert auto_adapter("pii", None) == "shipped:pii"
    assert auto_adapter("pii", "/models/llama.gguf") is None
    assert auto_adapter("toxicity", None) == "shipped:toxicity"
    assert auto_adapter("secrets", None) is None
    # The model handler checks its spec when built (the launcher), not on the workers.
    with pytest.raises(ValueError, match="auto_adapter"):
        gdr_beam.JaxModelHandler(adapter="auto")
    assert gdr_beam.JaxModelHandler(adapter="shipped:pii").adapter == "shipped:pii"


def test_shipped_adapters_are_small_and_packaged():
    for task in SHIPPED:
        path = shipped_path(task)
        assert os.path.getsize(os.path.join(path, "adapter.safetensors")) < 8e6
        assert os.path.exists(os.path.join(path, "adapter_config.json"))
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        assert '"adapters/*/*"' in f.read()


def test_shipped_pii_adapter_refines_where_the_base_model_fails(embedded_model):
    task = get_task("pii")
    examples = list(pii_examples(10, 4242, "eval_fresh"))

    def passes(model):
        prompts = [model.apply_chat_template(task.messages(e["text"])) for e in examples]
        outs = model.generate(prompts, max_new_tokens=96, temperature=0.0)
        ok = []
        for e, out in zip(examples, outs):
            review = task.review(e["text"], task.parse(out))
            ok.append(review.accepted is not None and review.accepted.verdict == "rewritten"
                      and not any(v in review.accepted.text for v in e["planted"]))
        return ok

    base = passes(embedded_model)
    # Loaded as the job loads it (the handler calls load_model(adapter="shipped:pii")), so the
    # pipeline tests of this process reuse this copy instead of loading their own.
    adapted = passes(gdr_beam.JaxModelHandler(adapter="shipped:pii").load_model())
    # Measured on a larger set by benchmarks/adapt_quality.py; here a floor a broken or
    # missing merge cannot reach (the base model passes about none of them).
    assert sum(adapted) >= 6 and sum(adapted) > sum(base), (base, adapted)


def test_shipped_toxicity_adapter_refines_where_the_base_model_fails(embedded_model):
    task = get_task("toxicity")
    texts = ["that bitch lied to me about the rent and I still want my money back",
             "Shut up, you stupid clown. The meeting moved to noon.",
             "what the fuck is this shit, the app crashed twice today",
             "my neighbour is a lazy bastard who never mows his lawn",
             "you're an idiot if you think the bus comes before nine",
             "these damn morons parked in front of my garage again",
             "fuck this weather, the flight got cancelled"]

    def passes(model):
        prompts = [model.apply_chat_template(task.messages(t)) for t in texts]
        outs = model.generate(prompts, max_new_tokens=64, temperature=0.0)
        reviews = [task.review(t, task.parse(o)) for t, o in zip(texts, outs)]
        return [r.accepted is not None and r.accepted.verdict == "rewritten" for r in reviews]

    base = passes(embedded_model)
    adapted = passes(gdr_beam.JaxModelHandler(adapter="shipped:toxicity").load_model())
    # Measured: base 0/7 (it copies the text or the prompt's example), adapter 6/7.
    assert sum(adapted) >= 4 and sum(adapted) > sum(base), (base, adapted)
