"""What every multiple-choice format shares: choices, parsing, RL reference, pairs.

`ChoiceTask` is scored by log-likelihood (lm-eval's protocol) or by generating and
parsing a final answer; `LetterChoiceTask` adds the lettered-options prompt most exam
datasets use (MedQA, MedMCQA, MMLU) and the "wrong option argued with confidence"
helpfulness pairs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from medalign.data.records import QARecord
from medalign.tasks.base import EvalContext, LoglikItem, Pair, Task

CONFIDENT_WRONG = "The answer is clearly {letter}: {text}. This is well established.\n"


class ChoiceTask(Task):
    """A question with a closed set of answers."""

    eval_modes: ClassVar[tuple[str, ...]] = ("loglik", "generate")
    breakdown_key: ClassVar[str | None] = None  # meta key for a per-group accuracy table
    breakdown_name: ClassVar[str] = ""

    def choices(self, record: QARecord) -> list[str]:
        return list(record.options or {})

    def gold(self, record: QARecord) -> str:
        return str(record.answer)

    def loglik_item(self, record: QARecord) -> LoglikItem:
        raise NotImplementedError

    def parse(self, text: str, record: QARecord) -> str | None:
        from medalign.eval.parsing import parse_choice

        return parse_choice(text, self.choices(record))

    def evaluate(
        self, ctx: EvalContext, records: list[QARecord], mode: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from medalign.eval import choice

        if mode == "loglik":
            return choice.score_loglik(self, ctx, records)
        return choice.score_generated(self, ctx, records)

    def breakdowns(
        self, records: list[QARecord], correct: list[float], predicted: list[str | None]
    ) -> dict[str, Any]:
        """Extra tables and metrics for the report (per subject, confusion …)."""
        if not self.breakdown_key:
            return {}
        from medalign.eval.metrics import grouped_accuracy

        groups = [r.meta.get(self.breakdown_key) for r in records]
        return {f"by_{self.breakdown_name}": grouped_accuracy(groups, correct)}

    def reward_reference(self, record: QARecord) -> dict[str, Any] | None:
        return {"gold": self.gold(record), "choices": self.choices(record)}

    @classmethod
    def correctness(cls, text: str, reference: dict[str, Any]) -> float:
        from medalign.eval.parsing import parse_choice

        return float(parse_choice(text, list(reference["choices"])) == reference["gold"])


class LetterChoiceTask(ChoiceTask):
    """Lettered options (A-D/E): lm-eval's "Question: …\\nA. …\\nAnswer:" prompt family."""

    lm_eval_header: ClassVar[str] = "\n"  # between the question and the options

    def loglik_item(self, record: QARecord) -> LoglikItem:
        options = record.options or {}
        lines = "".join(f"{k}. {v}\n" for k, v in options.items())
        context = f"Question: {record.question}{self.lm_eval_header}{lines}Answer:"
        letters = list(options)
        return LoglikItem(context, letters, letters.index(self.gold(record)))

    def pairs(
        self, records: list[QARecord], objective: str, negatives: list[str | None] | None = None
    ) -> list[Pair]:
        """helpfulness: chosen = gold + rationale; rejected = a wrong option argued with
        confidence (even rows, or rows without rationale) or the bare right letter."""
        from medalign.rewards.pairs import pair

        if objective != "helpfulness":
            return []
        out = []
        for i, record in enumerate(records):
            letters = self.choices(record)
            gold = self.gold(record)
            wrong = letters[(letters.index(gold) + 1) % len(letters)]
            if i % 2 == 0 or not record.rationale:
                options = record.options or {}
                rejected = CONFIDENT_WRONG.format(letter=wrong, text=options[wrong].strip())
                rejected += self.final_line(wrong)
            else:
                rejected = self.final_line(gold)
            chosen = self.target(record, rationale=True)
            out.append(pair(self.prompt(record), chosen, rejected, "helpfulness", self.cfg.name))
        return out
