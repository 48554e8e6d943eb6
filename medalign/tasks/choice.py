"""What every multiple-choice format shares: choices, parsing, RL reference, pairs.

`ChoiceTask` is scored by log-likelihood (lm-eval's protocol), by generating and
parsing a final answer, or by generated chain-of-thought (eval.mode=cot,
eval/cot_score.py); `LetterChoiceTask` adds the lettered-options prompt most exam
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

    eval_modes: ClassVar[tuple[str, ...]] = ("loglik", "generate", "cot")
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
        if mode == "cot":  # generated chain-of-thought, strict + flexible extraction
            from medalign.eval.cot_score import score_cot

            return score_cot(self, ctx, records)
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
        """The gold and the choices; `strict` where the dataset trains on rationales (its
        answers reason first): correctness then reads the final-answer line only, the
        strict extraction of eval.mode=cot, so RL rewards reasoning that ends in the
        asked format, not a letter found anywhere in the reasoning."""
        reference = {"gold": self.gold(record), "choices": self.choices(record)}
        if self.cfg.rationale:
            reference["strict"] = True
        return reference

    def on_policy_pairs(self, records: list[QARecord], negatives: list[str | None]) -> list[Pair]:
        """helpfulness pairs whose rejected answer is the policy's own wrong one (the choice
        it found likeliest among the wrong ones, reward.negatives=sample): chosen and
        rejected then differ only in the answer, so the reward model must know which is
        right, not spot a template (which it learns at once: held-out accuracy 1.0)."""
        from medalign.rewards.pairs import pair

        return [
            pair(self.prompt(r), self.target(r), negative, "helpfulness", self.cfg.name)
            for r, negative in zip(records, negatives, strict=True)
            if negative is not None
        ]

    @classmethod
    def correctness(cls, text: str, reference: dict[str, Any]) -> float:
        choices = list(reference["choices"])
        if reference.get("strict"):
            from medalign.eval.cot import extract_strict

            return float(extract_strict(text, choices) == reference["gold"])
        from medalign.eval.parsing import parse_choice

        return float(parse_choice(text, choices) == reference["gold"])


class LetterChoiceTask(ChoiceTask):
    """Lettered options (A-D/E): lm-eval's "Question: …\\nA. …\\nAnswer:" prompt family.

    `dataset.answer_as` says how an answer is stated. letter (the default): the option's
    letter, lm-eval's multiple-choice formulation. text: the option's own text, the cloze
    formulation (OLMES's CF; lm-eval's `*_continuation` tasks), which small models answer
    long before they can map an answer they know to its letter: the synthetic world's
    1.9M-parameter model recalls 96% of held-out facts as text and stays at chance as
    letters (experiments/README.md). Choices, gold, the final line, generation parsing
    and the RL reward all follow it.
    """

    lm_eval_header: ClassVar[str] = "\n"  # between the question and the options

    def prompt(self, record: QARecord) -> str:
        """answer_as=text: dataset.cloze_template, which shows no options (the cloze
        formulation; a small model shown the options copies one of them: 0.20 on the
        world's held-out questions against 0.73 without them)."""
        if self.cfg.answer_as == "text":
            from medalign.tasks.base import render

            fields = self.template_fields(record)
            return render("dataset.cloze_template", self.cfg.cloze_template, fields, self.cfg.name)
        return super().prompt(record)

    def stated(self, record: QARecord, letter: str) -> str:
        """How an answer naming option `letter` states it: the letter, or its text."""
        if self.cfg.answer_as == "text":
            return (record.options or {})[letter].strip()
        return letter

    def choices(self, record: QARecord) -> list[str]:
        return [self.stated(record, letter) for letter in record.options or {}]

    def gold(self, record: QARecord) -> str:
        return self.stated(record, str(record.answer))

    def answer_text(self, record: QARecord) -> str:
        return self.gold(record)

    def loglik_item(self, record: QARecord) -> LoglikItem:
        choices = self.choices(record)
        if self.cfg.answer_as == "text":  # cloze: the options are not shown
            context = f"Question: {record.question}\nAnswer:"
        else:
            lines = "".join(f"{k}. {v}\n" for k, v in (record.options or {}).items())
            context = f"Question: {record.question}{self.lm_eval_header}{lines}Answer:"
        return LoglikItem(context, choices, choices.index(self.gold(record)))

    def pairs(
        self, records: list[QARecord], objective: str, negatives: list[str | None] | None = None
    ) -> list[Pair]:
        """helpfulness: chosen = gold + rationale; rejected = a wrong option argued with
        confidence (even rows, or rows without rationale) or the bare right letter."""
        from medalign.rewards.pairs import pair

        if objective != "helpfulness":
            return []
        if negatives is not None:
            return self.on_policy_pairs(records, negatives)
        out = []
        for i, record in enumerate(records):
            options = record.options or {}
            letters = list(options)
            gold = str(record.answer)
            wrong = letters[(letters.index(gold) + 1) % len(letters)]
            if i % 2 == 0 or not record.rationale:
                rejected = CONFIDENT_WRONG.format(letter=wrong, text=options[wrong].strip())
                rejected += self.final_line(self.stated(record, wrong))
            else:
                rejected = self.final_line(self.stated(record, gold))
            chosen = self.target(record, rationale=True)
            out.append(pair(self.prompt(record), chosen, rejected, "helpfulness", self.cfg.name))
        return out
