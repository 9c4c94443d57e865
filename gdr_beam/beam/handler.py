"""RunInference ModelHandler for the gdr-beam JAX engine (Beam ships none for JAX).

RunInference keeps the loaded model in a per-process `shared.Shared` handle, so `load_model`
runs once per worker process and every DoFn thread uses that one copy; with
`share_across_processes=True` Beam's multi_process_shared serves one copy per machine (one per
accelerator is what GPU/TPU workers want). Nothing here loads the model at construction: the
handler is pickled to the workers, and the model is built where it runs, on whatever
accelerator that worker has.

Batches are cut by tokens, not examples: each request weighs prompt tokens + max_new_tokens,
so a batch of long prompts holds fewer of them and the KV cache stays within budget.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, NamedTuple, Optional, Sequence

from absl import logging
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from gdr_beam.engine import LanguageModel, load_model

NAMESPACE = "gdr"
INFERENCE_ARGS = ("max_new_tokens", "temperature", "top_k", "top_p")


class GenerationRequest(NamedTuple):
    id: str
    prompt: str  # already chat-formatted
    num_tokens: int  # prompt tokens, counted before batching
    seed: int  # per-example sampling seed


class Generation(NamedTuple):
    text: str
    num_tokens: int
    hit_max_tokens: bool  # stopped by max_new_tokens, not by an end-of-turn: maybe truncated


class JaxModelHandler(ModelHandler[GenerationRequest, PredictionResult, LanguageModel]):
    def __init__(self, model_path: Optional[str] = None, *, dtype=None, param_dtype=None,
                 max_new_tokens: int = 256, temperature: float = 0.0,
                 top_k: Optional[int] = None, top_p: Optional[float] = None,
                 max_batch_tokens: int = 8192, max_batch_size: int = 32,
                 share_across_processes: bool = False, model_copies: int = 1):
        super().__init__()
        self.model_path = model_path
        self._dtype, self._param_dtype = dtype, param_dtype
        self._defaults = {"max_new_tokens": max_new_tokens, "temperature": temperature,
                          "top_k": top_k, "top_p": top_p}
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self._share = share_across_processes
        self._copies = model_copies

    def load_model(self) -> LanguageModel:
        t0 = time.perf_counter()
        model = load_model(self.model_path, dtype=self._dtype, param_dtype=self._param_dtype,
                           max_batch_size=self.max_batch_size,
                           max_batch_tokens=self.max_batch_tokens)
        seconds = time.perf_counter() - t0
        Metrics.distribution(NAMESPACE, "gdr/model/load_ms").update(int(seconds * 1000))
        logging.info("worker loaded %r in %.1fs", model, seconds)
        return model

    def validate_inference_args(self, inference_args: Optional[dict[str, Any]]):
        unknown = set(inference_args or {}) - set(INFERENCE_ARGS)
        if unknown:
            raise ValueError(f"unknown inference args {sorted(unknown)}; accepted: "
                             f"{list(INFERENCE_ARGS)}")

    def run_inference(self, batch: Sequence[GenerationRequest], model: LanguageModel,
                      inference_args: Optional[dict[str, Any]] = None
                      ) -> Iterable[PredictionResult]:
        self.validate_inference_args(inference_args)
        args = {**self._defaults, **(inference_args or {})}
        texts, ids = model.generate_with_ids([r.prompt for r in batch], seed=[r.seed for r in batch],
                                             **args)
        Metrics.counter(NAMESPACE, "gdr/generate/examples").inc(len(batch))
        Metrics.counter(NAMESPACE, "gdr/generate/tokens_in").inc(sum(r.num_tokens for r in batch))
        Metrics.counter(NAMESPACE, "gdr/generate/tokens_out").inc(sum(map(len, ids)))
        Metrics.distribution(NAMESPACE, "gdr/generate/batch_size").update(len(batch))
        return [PredictionResult(r, Generation(t, len(i), len(i) >= args["max_new_tokens"]),
                                 model.name)
                for r, t, i in zip(batch, texts, ids)]

    def element_weight(self, element) -> int:
        # Under KeyedModelHandler, BatchElements sees (key, request) pairs.
        request = element if isinstance(element, GenerationRequest) else element[1]
        return request.num_tokens + self._defaults["max_new_tokens"]

    def batch_elements_kwargs(self):
        # BatchElements sums element sizes; pinning min = max makes the token budget a hard
        # cap (a single request over budget still forms a batch of its own).
        return {"min_batch_size": self.max_batch_tokens, "max_batch_size": self.max_batch_tokens,
                "element_size_fn": self.element_weight}

    def get_num_bytes(self, batch: Sequence[GenerationRequest]) -> int:
        return sum(len(r.prompt.encode("utf-8")) for r in batch)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE

    def share_model_across_processes(self) -> bool:
        return self._share

    def model_copies(self) -> int:
        return self._copies
