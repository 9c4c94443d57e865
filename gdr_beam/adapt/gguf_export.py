"""A LoRA adapter of ours as a llama.cpp LoRA adapter (GGUF), for a Llama-family GGUF base.

llama.cpp loads such a file beside its base model (`llama-cli --lora FILE`, llama-cpp-python
`Llama(model_path=..., lora_path=FILE)`) and adds scale * B @ A to each adapted weight as it
runs. Uses: running an adapter trained here in llama.cpp, and checking our merge against an
independent implementation (benchmarks/refine_throughput.py runs both engines on the same
adapter).

Layout. Our adapter stores A [in, rank] and B [rank, out] on the HF orientation of each
projection; GGUF tensors list dimensions fastest-first, so a weight [out, in] (numpy) holds
lora_a as [rank, in] = A.T and lora_b as [out, rank] = B.T. llama.cpp's converter permutes
the rows of Q and K for its interleaved RoPE (`checkpoints._unpermute` undoes it on load), so
B.T of q and k gets the same permutation here.

    python -m gdr_beam.adapt.gguf_export ADAPTER_DIR OUT.gguf
"""

from __future__ import annotations

import sys
from typing import Optional

import numpy as np

from gdr_beam.adapt.lora import load_adapter

# our target -> the GGUF tensor it adapts (blk.{i}.<name>)
GGUF_TARGETS = {"q": "attn_q.weight", "k": "attn_k.weight", "v": "attn_v.weight",
                "o": "attn_output.weight", "gate": "ffn_gate.weight", "up": "ffn_up.weight",
                "down": "ffn_down.weight"}


def permute_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """convert_hf_to_gguf.py's Q/K row permutation (the inverse of checkpoints._unpermute)."""
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def lora_tensors(adapter: dict, num_heads: int, num_kv_heads: int,
                 permute: bool = True) -> dict:
    """GGUF tensor name -> float32 array, in llama.cpp's LoRA layout (module doc). permute=False
    leaves Q/K rows in HF order: a wrong layout, for benchmarks to show what it costs."""
    out = {}
    for name, ab in sorted(adapter.items()):
        layer, target = name.split(".")
        i = int(layer.split("_")[1])
        a = np.asarray(ab["a"], np.float32).T  # [rank, in]
        b = np.asarray(ab["b"], np.float32).T  # [out, rank]
        if permute and target in ("q", "k"):
            b = permute_rows(b, num_heads if target == "q" else num_kv_heads)
        base = f"blk.{i}.{GGUF_TARGETS[target]}"
        out[f"{base}.lora_a"] = np.ascontiguousarray(a)
        out[f"{base}.lora_b"] = np.ascontiguousarray(b)
    return out


def export(adapter_dir: str, out_path: str, num_heads: Optional[int] = None,
           num_kv_heads: Optional[int] = None, base_model: Optional[str] = None,
           permute: bool = True) -> str:
    """Writes the adapter at adapter_dir as a llama.cpp LoRA GGUF. The head counts (for the
    Q/K permutation) come from the base model (default: the embedded one); permute: see
    `lora_tensors`."""
    import gguf  # pylint: disable=import-outside-toplevel
    if num_heads is None or num_kv_heads is None:
        from gdr_beam.model.checkpoints import default_model_path, load_config  # pylint: disable=import-outside-toplevel
        cfg = load_config(base_model or default_model_path())
        num_heads, num_kv_heads = cfg.num_heads, cfg.num_kv_heads
    adapter, lora, _ = load_adapter(adapter_dir)
    writer = gguf.GGUFWriter(out_path, "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(lora.alpha))
    for name, array in lora_tensors(adapter, num_heads, num_kv_heads, permute).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m gdr_beam.adapt.gguf_export ADAPTER_DIR OUT.gguf")
    print(export(sys.argv[1], sys.argv[2]))
