"""lm-evaluation-harness prompts for log-likelihood scoring, so our numbers sit next to
the Open Medical-LLM Leaderboard's (tasks `medqa_4options`, `medmcqa`, `pubmedqa`).

The prompt ends in "Answer:"; each choice is scored as the continuation " <choice>".
"""

from __future__ import annotations

from medalign.data.records import QARecord
from medalign.errors import MedalignError

YES_NO_MAYBE = ["yes", "no", "maybe"]


def loglik_item(record: QARecord, fmt: str) -> tuple[str, list[str], int]:
    """(context, choices, gold index) for one record, in lm-eval's exact text."""
    if fmt == "pubmedqa":
        context = "Abstract: {}\nQuestion: {}\nAnswer:".format(
            "\n".join(record.context), record.question
        )
        return context, YES_NO_MAYBE, YES_NO_MAYBE.index(str(record.answer))
    if fmt in ("medqa", "medmcqa"):
        options = record.options or {}
        header = "\nChoices:\n" if fmt == "medmcqa" else "\n"
        lines = "".join(f"{k}. {v}\n" for k, v in options.items())
        letters = list(options)
        return (
            f"Question: {record.question}{header}{lines}Answer:",
            letters,
            letters.index(str(record.answer)),
        )
    raise MedalignError(
        f"log-likelihood scoring needs a choice format, not {fmt!r}; use eval.mode=generate"
    )
