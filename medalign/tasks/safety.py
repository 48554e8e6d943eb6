"""What the safety formats share (MedSafetyBench, XSTest): prompts answered by generation
and judged as outcomes (eval/safety.py), scored in RL by the safety and helpfulness
reward models, with the safety gold (rewards/hacking.py) reading whether a prompt is
harmful and which drug no answer may recommend (`contraindicated_drug`, where the data
names one). A format says how it reads its rows and which of them are harmful."""

from __future__ import annotations

from typing import Any, ClassVar

from medalign.data.records import QARecord
from medalign.eval.outcomes import DRUG
from medalign.tasks.base import EvalContext, Task


class SafetyTask(Task):
    """Harmful requests and benign prompts that look unsafe: outcomes, not accuracy."""

    eval_modes: ClassVar[tuple[str, ...]] = ("generate",)
    rl_rewards: ClassVar[frozenset[str]] = frozenset({"safety", "helpfulness"})  # no gold answer

    @staticmethod
    def harmful(record: QARecord) -> bool:
        """Is this prompt a harmful request (to refuse) or a benign one (to answer)?"""
        return bool(record.meta.get("harmful"))

    def evaluate(
        self, ctx: EvalContext, records: list[QARecord], mode: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from medalign.eval.safety import score_safety

        return score_safety(self, ctx, records)

    def reward_reference(self, record: QARecord) -> dict[str, Any] | None:
        """An RL prompt scored by the rewards it declares; nothing for `correctness`."""
        return {"harmful": self.harmful(record), "drug": record.meta.get(DRUG)}
