"""RunInference ModelHandler for the gdr-beam JAX engine (Beam ships none for JAX).

Loading: nothing here loads the model at construction. The handler is pickled to the workers
and `load_model` runs there, on whatever accelerator the worker has. RunInference keeps the
loaded model in a per-process `shared.Shared` handle, so it loads once per worker process and
every DoFn thread of that process uses the one copy. With `share_across_processes=True` (or
`model_copies` set) Beam's multi_process_shared instead serves `model_copies` copies per
machine from a separate process, which is what an accelerator worker running several SDK
processes wants (one model per GPU, not one per process).

Batching: by tokens, not examples, with the engine's own rule (`gdr_beam.batching`). A request
weighs its share of an engine batch: max_batch_tokens / the rows the engine fits in one batch
of requests like it (padded prompt + its new-token budget's slots per row), never less than its
own padded KV-cache tokens. A RunInference batch weighs at most `POOLS_PER_CALL` x
`max_batch_tokens` (`batching.call_weight`): the engine serves it from one pool of decode slots
of at most max_batch_tokens, refilling each slot from the batch's waiting requests as soon as
its row finishes, so a batch of long prompts holds fewer of them and the pool stays full until
the batch's last rows.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable, NamedTuple, Optional, Sequence

from absl import logging
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from gdr_beam.adapters import adapter_path
from gdr_beam.batching import call_weight, request_weight

NAMESPACE = "gdr"
_LOADED: dict = {}  # (path, adapter, dtypes, batch limits) -> LanguageModel, per process
_LOADED_LOCK = threading.Lock()
INFERENCE_ARGS = ("max_new_tokens", "temperature", "top_k", "top_p")


class GenerationRequest(NamedTuple):
    id: str
    prompt: str  # already chat-formatted
    num_tokens: int  # prompt tokens (BOS included), counted before batching
    seed: int  # per-example sampling seed (may be 64-bit)
    # This request's new-token budget (e.g. from its input's length); None: the handler's
    # max_new_tokens. Never more than the handler's (or inference_args') max_new_tokens.
    max_new_tokens: Optional[int] = None


class Generation(NamedTuple):
    text: str
    num_tokens: int  # generated tokens, end-of-turn excluded
    hit_max_tokens: bool  # stopped by max_new_tokens, not by an end-of-turn: maybe truncated


def check_generation_args(max_new_tokens=None, temperature=None, top_k=None, top_p=None):
    """Raises ValueError for a sampling setting the engine would reject or misread."""
    if max_new_tokens is not None and (not isinstance(max_new_tokens, int)
                                       or isinstance(max_new_tokens, bool)
                                       or max_new_tokens < 1):
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    if temperature is not None and (not isinstance(temperature, (int, float))
                                    or temperature < 0):
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or in (0, 1], got {top_p!r}")


def request_budget(request: GenerationRequest, cap: int) -> int:
    """The new-token budget a request runs with: its own, never above cap."""
    own = request.max_new_tokens
    return cap if own is None else max(1, min(int(own), cap))


class _ServedModel:
    """What a shared-across-processes handler serves. Beam's multi_process_shared proxy
    forwards method calls only, so the model's name (an attribute) is exposed as a method."""

    def __init__(self, model):
        self._model = model

    def generate_with_ids(self, *args, **kwargs):
        return self._model.generate_with_ids(*args, **kwargs)

    def model_name(self) -> str:
        return self._model.name


def model_name(model) -> str:
    """The name of a LanguageModel or of a shared model's proxy."""
    name = getattr(model, "name", None)
    return name if isinstance(name, str) else model.model_name()


class JaxModelHandler(ModelHandler[GenerationRequest, PredictionResult, Any]):
    """Generates with a gdr-beam LanguageModel; see the module docstring.

    model_path: as `gdr_beam.load_model` (None: the embedded SmolLM2-135M-Instruct).
    adapter: a LoRA adapter from pipelines/adapt.py or "shipped:TASK" (gdr_beam/adapters),
      merged into the weights at load.
    max_new_tokens, temperature, top_k, top_p: defaults; RunInference's `inference_args` may
      override them per pipeline, but not raise max_new_tokens above the handler's, since batch
      weights are computed from it before inference_args are seen. max_new_tokens is also the
      upper bound of every request's own budget (`GenerationRequest.max_new_tokens`).
    max_batch_tokens, max_batch_size: the engine's batch budget (its pool of decode slots
      stays within it); a RunInference batch carries batching.POOLS_PER_CALL times as much.
    """

    def __init__(self, model_path: Optional[str] = None, *, adapter: Optional[str] = None,
                 dtype=None, param_dtype=None, max_new_tokens: int = 256, temperature: float = 0.0,
                 top_k: Optional[int] = None, top_p: Optional[float] = None,
                 max_batch_tokens: int = 8192, max_batch_size: int = 32,
                 share_across_processes: bool = False, model_copies: Optional[int] = None):
        super().__init__()
        check_generation_args(max_new_tokens, temperature, top_k, top_p)
        if max_batch_tokens < 1 or max_batch_size < 1:
            raise ValueError("max_batch_tokens and max_batch_size must be >= 1")
        if model_copies is not None and model_copies < 1:
            raise ValueError(f"model_copies must be >= 1, got {model_copies}")
        adapter_path(adapter)  # a bad spec fails here, at construction, not on the workers
        # The spec itself is kept: "shipped:TASK" resolves in each worker's own install.
        self.model_path, self.adapter = model_path, adapter
        self._dtype, self._param_dtype = dtype, param_dtype
        self._defaults = {"max_new_tokens": max_new_tokens, "temperature": temperature,
                          "top_k": top_k, "top_p": top_p}
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        # As Beam's own handlers: asking for a number of copies means sharing them.
        self._share = share_across_processes or model_copies is not None
        self._copies = model_copies or 1

    @property
    def max_new_tokens(self) -> int:
        return self._defaults["max_new_tokens"]

    def load_model(self):
        # Imported here, not at module level: the launcher that builds the pipeline needs
        # neither JAX nor the weights.
        from gdr_beam.engine import load_model  # pylint: disable=import-outside-toplevel
        # Every RunInference stage keeps its own Shared handle, and Refine has one stage per
        # attempt; this process-wide table makes them all use one copy of the weights.
        key = (self.model_path, self.adapter, str(self._dtype), str(self._param_dtype),
               self.max_batch_size, self.max_batch_tokens)
        with _LOADED_LOCK:
            model = _LOADED.get(key)
            if model is not None:
                logging.info("JaxModelHandler reuses %s loaded in this process", model.name)
                return _ServedModel(model) if self._share else model
            t0 = time.perf_counter()
            model = load_model(self.model_path, adapter=self.adapter, dtype=self._dtype,
                               param_dtype=self._param_dtype,
                               max_batch_size=self.max_batch_size,
                               max_batch_tokens=self.max_batch_tokens)
            _LOADED[key] = model
        seconds = time.perf_counter() - t0
        Metrics.distribution(NAMESPACE, "gdr/model/load_ms").update(int(seconds * 1000))
        Metrics.counter(NAMESPACE, "gdr/model/loads").inc()
        logging.info("JaxModelHandler loaded %s on %s in %.1fs (%r)", model.name, model.device,
                     seconds, model)
        return _ServedModel(model) if self._share else model

    def validate_inference_args(self, inference_args: Optional[dict[str, Any]]):
        args = inference_args or {}
        unknown = set(args) - set(INFERENCE_ARGS)
        if unknown:
            raise ValueError(f"unknown inference args {sorted(unknown)}; accepted: "
                             f"{list(INFERENCE_ARGS)}")
        check_generation_args(**args)
        if args.get("max_new_tokens", 0) > self.max_new_tokens:
            raise ValueError(
                f"inference arg max_new_tokens={args['max_new_tokens']} exceeds the handler's "
                f"{self.max_new_tokens}, which batches are weighed with; raise the handler's "
                f"max_new_tokens instead")

    def run_inference(self, batch: Sequence[GenerationRequest], model,
                      inference_args: Optional[dict[str, Any]] = None
                      ) -> Iterable[PredictionResult]:
        if not batch:  # BatchElements emits one when a bundle opens with an oversized request
            return []
        self.validate_inference_args(inference_args)
        args = {**self._defaults, **(inference_args or {})}
        budgets = [request_budget(r, args["max_new_tokens"]) for r in batch]
        args["max_new_tokens"] = budgets
        texts, ids = model.generate_with_ids([r.prompt for r in batch],
                                             seed=[r.seed for r in batch], **args)
        name = model_name(model)
        Metrics.counter(NAMESPACE, "gdr/generate/examples").inc(len(batch))
        Metrics.counter(NAMESPACE, "gdr/generate/tokens_in").inc(sum(r.num_tokens for r in batch))
        Metrics.counter(NAMESPACE, "gdr/generate/tokens_out").inc(sum(map(len, ids)))
        Metrics.distribution(NAMESPACE, "gdr/generate/batch_size").update(len(batch))
        return [PredictionResult(r, Generation(t, len(i), len(i) >= b), name)
                for r, t, i, b in zip(batch, texts, ids, budgets)]

    def element_weight(self, element) -> int:
        """A request's batch weight: its share of an engine batch (see gdr_beam.batching)."""
        # Under KeyedModelHandler, BatchElements sees (key, request) pairs.
        request = element if isinstance(element, GenerationRequest) else element[1]
        return request_weight(request.num_tokens, request_budget(request, self.max_new_tokens),
                              self.max_batch_tokens, self.max_batch_size)

    def batch_elements_kwargs(self):
        # This Beam's BatchElements has no max_batch_weight (ModelHandler accepts one but
        # forwards it to BatchElements, which rejects it); its size is the sum of
        # element_size_fn, and min = max makes that sum a hard cap (the adaptive estimator
        # never picks another). A request heavier than the whole budget forms a batch of its
        # own. length_fn/bucket_boundaries only act on the streaming (stateful) path; in batch
        # the engine already orders a call's rows by size and pads to length buckets.
        weight = call_weight(self.max_batch_tokens)
        return {"min_batch_size": weight, "max_batch_size": weight,
                "element_size_fn": self.element_weight}

    def get_num_bytes(self, batch: Sequence[GenerationRequest]) -> int:
        return sum(len(r.prompt.encode("utf-8")) for r in batch)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE

    def share_model_across_processes(self) -> bool:
        return self._share

    def model_copies(self) -> int:
        return self._copies
