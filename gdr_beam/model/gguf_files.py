"""One parsed GGUF header per file and process.

Parsing a GGUF file's metadata (the 49k-entry vocabulary of the embedded model included) takes
about 3 s on the 2-core CPU, and a job start needs it three times: the config, the weights and
the tokenizer. The reader memory-maps the file and is read-only after construction, so one per
file serves them all.
"""

from __future__ import annotations

import functools
import os

import gguf


def gguf_reader(path: str) -> gguf.GGUFReader:
    """The parsed file at `path`, shared while the file is unchanged (same size and mtime)."""
    stat = os.stat(path)
    return _reader(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _reader(path: str, size: int, mtime_ns: int) -> gguf.GGUFReader:
    del size, mtime_ns  # part of the cache key only
    return gguf.GGUFReader(path)
