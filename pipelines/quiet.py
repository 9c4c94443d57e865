"""Quiet by default: the job prints its own progress and summary, not its libraries' chatter.

Beam, TensorFlow (Python and C++), TFDS, JAX/XLA, absl, gRPC, Presidio and spaCy log INFO and
WARNING lines that say nothing about the user's data (~90 before the summary of the README's
first command). `configure(argv)` runs before those libraries are imported (some log at import)
and, unless the command line asks for more, lets through:

  * every log record from our own code (gdr_beam/, pipelines/, launch/): progress lines,
    what was loaded, where the report is;
  * ERROR and above from anyone.

It asks for more with `--verbosity=N` (N >= 1; also `-v N`) or one of Beam's own logging flags
(`--default_sdk_harness_log_level`, `--sdk_harness_log_level_overrides`): then nothing is
filtered. Only the CLI calls this; importing pipelines.refine (tests, notebooks) changes no
logging.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
import warnings
from typing import Sequence

from absl import logging as absl_logging  # absl alone: imports neither Beam nor TensorFlow

BEAM_LOGGING_FLAGS = ("--default_sdk_harness_log_level", "--sdk_harness_log_level_overrides")
# Named so that a record logged before our filter is attached still meets a level.
THIRD_PARTY_LOGGERS = ("apache_beam", "tensorflow", "tensorflow_datasets", "jax", "jaxlib",
                       "absl.flags", "presidio-analyzer", "presidio_analyzer",
                       "presidio-anonymizer", "presidio_anonymizer", "spacy", "h5py",
                       "urllib3", "google", "grpc", "faker", "phonenumbers", "datasketch")
_VERBOSITY = re.compile(r"^(?:--verbosity|-v)(?:=(-?\d+))?$")


def wants_verbose(argv: Sequence[str]) -> bool:
    """True when argv asks for library logs: --verbosity/-v >= 1 or a Beam logging flag."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg.split("=", 1)[0] in BEAM_LOGGING_FLAGS:
            return True
        match = _VERBOSITY.match(arg)
        if match:
            value = match.group(1) if match.group(1) is not None else \
                (args[i + 1] if i + 1 < len(args) else "0")
            try:
                if int(value) >= 1:
                    return True
            except ValueError:
                return False
    return False


def _our_roots() -> tuple:
    roots = [os.path.dirname(os.path.abspath(__file__))]  # pipelines/
    for name in ("gdr_beam", "launch"):
        spec = importlib.util.find_spec(name)  # finds, does not import, the package
        if spec is not None and spec.submodule_search_locations:
            roots += [os.path.abspath(p) for p in spec.submodule_search_locations]
    return tuple(os.path.join(r, "") for r in roots)


class OursOrErrors(logging.Filter):
    """Passes records logged from files under `roots`, and any record at ERROR or above.

    The calling file is found on the stack, not in `record.pathname`: records that go through
    absl.logging carry absl's own file there (its caller lookup does not reach the record on
    this Python). A filter runs inside the logging call, so the caller's frame is still live.
    """

    def __init__(self, roots: Sequence[str]):
        super().__init__()
        self._roots = tuple(roots)
        self._skip = (os.path.join(os.path.dirname(logging.__file__), ""),
                      os.path.join(os.path.dirname(absl_logging.__file__), ""),
                      os.path.abspath(__file__))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        frame = sys._getframe(1)  # pylint: disable=protected-access
        while frame is not None:
            path = os.path.abspath(frame.f_code.co_filename)
            if not path.startswith(self._skip):
                return path.startswith(self._roots)
            frame = frame.f_back
        return False


def configure(argv: Sequence[str]) -> bool:
    """Quiets third-party logging unless argv asks for it; returns True when quieted."""
    if wants_verbose(argv):
        return False
    # C++ logs of TensorFlow and XLA (JAX): errors only. setdefault: a user's own setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("GLOG_minloglevel", "2")
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    ours = OursOrErrors(_our_roots())
    # Records logged on a logger go through its own filters: the root logger (libraries that
    # call logging.warning directly) and absl's (TFDS and others log through absl.logging,
    # as we do; the filter tells the two apart by the calling file).
    logging.getLogger().addFilter(ours)
    logging.getLogger("absl").addFilter(ours)
    # Library warnings (DeprecationWarning, UserWarning...) are the same chatter.
    warnings.filterwarnings("ignore")
    return True
