"""gdr-beam: Generative Data Refinement at dataset scale, on Apache Beam with a JAX decoder."""

import importlib

# Exports resolve on first use, so `import gdr_beam.model.config` (e.g. in a Beam worker's
# unpickling path) does not pull in JAX, TensorFlow and Beam all at once.
_EXPORTS = {
    "LanguageModel": "gdr_beam.engine",
    "load_model": "gdr_beam.engine",
    "load_tokenizer": "gdr_beam.engine",
    "Refine": "gdr_beam.beam.refine",
    "RewriteBudget": "gdr_beam.beam.refine",
    "JaxModelHandler": "gdr_beam.beam.handler",
    "ReadRecords": "gdr_beam.beam.io",
    "WriteRefined": "gdr_beam.beam.io",
    "WriteDeadLetters": "gdr_beam.beam.io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gdr_beam' has no attribute {name!r}")
