"""Refinement tasks: prompt + output parsing + verifier + fallback, registered by name."""

from gdr_beam.tasks.base import Task, Verification, get_task, register_task, task_names
from gdr_beam.tasks import pii  # noqa: F401  (registers "pii")

__all__ = ["Task", "Verification", "get_task", "register_task", "task_names"]
