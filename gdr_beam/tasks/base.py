"""What a refinement task is, and the registry that names them (`--task=pii`).

A task turns one example into chat messages for the model, parses the model's reply, and
verifies the rewrite against the original. Verification decides the verdict:
  rewritten  the model's rewrite passed;
  unchanged  nothing needed changing and the text is emitted as it was;
  fallback   the rewrite failed and a deterministic repair produced the text;
  rejected   nothing safe can be emitted (the pipeline turns it into a dead letter).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Callable, Optional

VERDICTS = ("rewritten", "unchanged", "fallback", "rejected")


@dataclasses.dataclass(frozen=True)
class Verification:
    verdict: str
    text: str
    # Replaced spans in original offsets: {"start", "end", "category", "replacement"}.
    changes: tuple = ()
    reason: str = ""  # why a rewrite was not accepted (empty for `rewritten`/`unchanged`)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; expected one of {VERDICTS}")


class Task(abc.ABC):
    """Subclass, set `name`, implement `messages` and `verify`; `register_task` makes it
    available by name to `Refine(task=...)` and `--task`."""

    name: str = ""

    @abc.abstractmethod
    def messages(self, text: str) -> list[dict]:
        """Chat messages asking the model to refine `text`."""

    def parse(self, output: str) -> str:
        """The rewrite inside the model's reply (default: the reply, trimmed)."""
        return output.strip()

    @abc.abstractmethod
    def verify(self, example_id: str, original: str, rewritten: Optional[str],
               seed: int) -> Verification:
        """Checks `rewritten` (None when the model produced no usable reply) against
        `original`; repairs or rejects it. Must be deterministic in (example_id, seed)."""


_REGISTRY: dict[str, Callable[[], Task]] = {}


def register_task(name: str, factory: Optional[Callable[[], Task]] = None):
    """Registers `factory` (a Task subclass or any callable returning a Task) under `name`.
    Without a factory it is a class decorator: `@register_task("secrets")`."""
    if factory is None:
        def decorate(cls):
            register_task(name, cls)
            return cls
        return decorate
    if name in _REGISTRY:
        raise ValueError(f"task {name!r} is already registered")
    _REGISTRY[name] = factory
    return factory


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_task(task) -> Task:
    """A Task instance from a name or an instance."""
    if isinstance(task, Task):
        return task
    if task not in _REGISTRY:
        raise ValueError(f"unknown task {task!r}; registered: {', '.join(task_names())}")
    return _REGISTRY[task]()
