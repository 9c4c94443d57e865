"""A LoRA adapter merged by gdr-beam vs the same adapter run by llama.cpp (an independent
implementation), on the task's own prompts.

Our side: `load_model(adapter=...)` folds the adapter into the f32 weights (LoRA merge), and
`adapt.forward.full_logits` scores prompt + the adapted model's greedy rewrite. llama.cpp's side:
the base GGUF as shipped (Q4_1) with the adapter exported by `gdr_beam.adapt.gguf_export`
(`lora_path`: llama.cpp adds scale * B @ A at run time), scoring the same token ids. Reported:
mean |logit difference| per position and top-1 agreement, next to three references measured
the same way: the two engines without any adapter (the quantisation's own difference, the
floor), the adapter exported without the Q/K row permutation (a layout error), and the
adapted logits against the base ones (what the adapter changes). The merge and the export
are right when the first figure sits at the floor, far from the other two.

    pip install llama-cpp-python
    python benchmarks/adapter_vs_llamacpp.py --adapter=shipped:pii --task=pii \
        --out=benchmarks/results/adapter_vs_llamacpp_pii.json
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_io import save_json  # noqa: E402  (a sibling module)

_PARSER = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
_PARSER.add_argument("--adapter", default="shipped:pii")
_PARSER.add_argument("--task", default="pii")
_PARSER.add_argument("--max_new_tokens", type=int, default=32)
_PARSER.add_argument("--out", default=None)

TEXTS = {
    "pii": ["Hi, I'm Laura Chen, call me at (415) 555-0199 or mail laura.chen@gmail.com.",
            "Please send the invoice to Mark Smith, 12 Baker Street, London NW1 6XE.",
            "Dear Dr. Anna Kowalska, your appointment at ul. Polna 5, 00-625 Warszawa is "
            "confirmed."],
    "toxicity": ["This update is fucking garbage, you idiots broke the export again.",
                 "that bitch lied to me about the rent and I want my money back",
                 "Shut up, you stupid clown. The meeting is at noon."],
}


def main():
    args = _PARSER.parse_args()
    import jax.numpy as jnp
    import llama_cpp
    import gdr_beam.adapt.gguf_export as export
    from gdr_beam.adapt import forward
    from gdr_beam.adapters import adapter_path
    from gdr_beam.engine import load_model
    from gdr_beam.model.checkpoints import default_model_path
    from gdr_beam.tasks import get_task

    task, base_path = get_task(args.task), default_model_path()
    adapted, base = load_model(None, adapter=args.adapter), load_model(None)
    prompts = [adapted.apply_chat_template(task.messages(t)) for t in TEXTS[args.task]]
    rewrites = adapted.generate(prompts, max_new_tokens=args.max_new_tokens, temperature=0.0)
    vocab = llama_cpp.Llama(model_path=base_path, vocab_only=True, verbose=False)
    seqs = [vocab.tokenize((p + r).encode(), add_bos=False, special=True)
            for p, r in zip(prompts, rewrites)]

    def ours(model):
        return [np.asarray(forward.full_logits(model.config, model.params,
                                               jnp.asarray([ids], jnp.int32)))[0]
                for ids in seqs]

    logits = {"adapted": ours(adapted), "base": ours(base)}
    with tempfile.TemporaryDirectory() as tmp:
        right = export.export(adapter_path(args.adapter), os.path.join(tmp, "lora.gguf"))
        wrong = export.export(adapter_path(args.adapter), os.path.join(tmp, "noperm.gguf"),
                              permute=False)
        rows = {}
        for name, lora, ref in (("adapter: llama.cpp vs gdr-beam", right, "adapted"),
                                ("no adapter: llama.cpp vs gdr-beam (floor)", None, "base"),
                                ("adapter without Q/K permutation (layout error)", wrong,
                                 "adapted"),
                                ("llama.cpp base vs gdr-beam adapted (what it changes)", None,
                                 "adapted")):
            llm = llama_cpp.Llama(model_path=base_path, lora_path=lora, n_ctx=2048,
                                  logits_all=True, verbose=False)
            diffs, agree, total = [], 0, 0
            for ids, mine in zip(seqs, logits[ref]):
                llm.reset()
                llm.eval(ids)
                theirs = np.asarray(llm.scores[:len(ids)])
                diffs.append(float(np.abs(theirs - mine).mean()))
                agree += int((theirs.argmax(-1) == mine.argmax(-1)).sum())
                total += len(ids)
            rows[name] = {"mean_abs_logit_diff": round(float(np.mean(diffs)), 4),
                          "top1_agreement": round(agree / total, 4), "positions": total}
    out = {"adapter": args.adapter, "task": args.task, "base": os.path.basename(base_path),
           "llama_cpp": llama_cpp.__version__, "rows": rows,
           "rewrites": dict(zip(TEXTS[args.task], rewrites))}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    save_json(out, args.out)


if __name__ == "__main__":
    main()
