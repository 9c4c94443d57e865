"""Refinement tasks: prompt + detector + verifier + fallback, registered by name."""

from gdr_beam.tasks.base import Review, Span, Task, Verification, get_task, register_task, \
    task_names
# Importing a task module registers it.
from gdr_beam.tasks import pii, secrets, toxicity  # noqa: F401

__all__ = ["Review", "Span", "Task", "Verification", "get_task", "register_task", "task_names"]
