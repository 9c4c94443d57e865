"""A custom refinement task: strip internal ticket references ("JIRA-1234") from text.

Register it by importing this module, then use it by name like the built-in tasks:

    import examples.custom_task  # registers "tickets"
    refined, dead = records | gdr_beam.Refine(task="tickets")

or from the command line: `python -m pipelines.refine --task=tickets
--task_module=examples.custom_task ...`.

A task needs three things: the prompt (`messages`), what must go (`detect`) and what to put
instead (`replacement`). The base class does the rest: the verifier (no detected value may
survive, no placeholders, no new values, the other words kept), the retry feedback, and the
deterministic fallback that replaces each detected span. Override `check` to add a check and
`fallback` to change the repair.
"""

import re

from gdr_beam.tasks import Span, Task, register_task

_TICKET = re.compile(r"\b[A-Z][A-Z0-9]+-\d+\b")


@register_task("tickets")
class TicketTask(Task):
    def messages(self, text, feedback=None):
        ask = ("Replace every internal ticket id such as ABC-123 in the text with a different, "
               "made-up id of the same form. Keep everything else. Reply with the text only.")
        if feedback:
            ask += f" Your previous answer was rejected: {feedback}."
        return [{"role": "system", "content": ask},
                {"role": "user", "content": f"Text:\n<<<\n{text}\n>>>"}]

    def detect(self, text):
        return [Span(m.start(), m.end(), "ticket", m.group()) for m in _TICKET.finditer(text)]

    def replacement(self, span, rng):
        project = span.value.split("-")[0]
        return f"{project}-{rng.randrange(10 ** 4, 10 ** 5)}"
