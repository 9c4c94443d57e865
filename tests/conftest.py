"""Suite-wide test settings. They change how long the suite takes, never what a test checks."""

import atexit
import os
import shutil
import tempfile

import pytest

# One persistent XLA compilation cache for the whole run, shared with every subprocess a test
# starts (the CLI job, the multi-device children inherit the environment): a program that
# several model instances or processes build alike (the embedded model's prefill and decode at
# one shape) is compiled once, not once per instance. Compiling the 30-layer decoder is much of
# what the model tests cost on CPU. A fresh directory per run, removed at exit, so no run ever
# reads another's cache; a cache the caller set up is left alone.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="gdr-beam-tests-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
    # JAX's default keeps only programs that took over a second to compile; the model's do.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_model():
    """The embedded model (f32), loaded once for every test module that only reads it.

    Tests that use it must leave it as they found it (they may read its counters and must
    restore any setting they change)."""
    import gdr_beam  # pylint: disable=import-outside-toplevel
    return gdr_beam.load_model(dtype="float32")


# The independent references (HF transformers reading the same GGUF) are slow to build
# (dequantising in Python, converting a 49k-token BPE): built once, shared by the test modules
# that compare against them, which only read them.

@pytest.fixture(scope="session")
def hf_reference_model():
    """HF transformers' model (PyTorch, f32) read from the embedded GGUF, in eval mode."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from gdr_beam.model import checkpoints  # pylint: disable=import-outside-toplevel
    directory, name = os.path.split(checkpoints.default_model_path())
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name,
                                                           dtype=torch.float32)
    return hf.eval()


@pytest.fixture(scope="session")
def hf_reference_tokenizer():
    """HF transformers' tokenizer converted from the embedded GGUF's metadata."""
    transformers = pytest.importorskip("transformers")
    from gdr_beam.model import checkpoints  # pylint: disable=import-outside-toplevel
    directory, name = os.path.split(checkpoints.default_model_path())
    return transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
