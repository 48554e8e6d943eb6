"""A medalign plugin package, written as a user would, outside medalign: a Task for a new
format (true/false claims about the invented zorb creature) and a reward function, found
through the entry points in ../medalign_zorb-0.1.dist-info/entry_points.txt (what
`pip install` writes for a pyproject's [project.entry-points."medalign.plugins"])."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medalign.data.files import FileHead, read_jsonl
from medalign.data.records import BadRows, QARecord
from medalign.registry import register
from medalign.tasks.base import LoglikItem
from medalign.tasks.choice import ChoiceTask


@register("task", "zorb_claims")
class ZorbClaims(ChoiceTask):
    """JSON Lines {"claim": str, "holds": bool}: is the claim true?"""

    name = "zorb_claims"

    @classmethod
    def recognizes(cls, head: FileHead) -> bool:
        return head.first_row is not None and "holds" in head.first_row

    def split_file(self, folder: Path) -> Path:
        return folder / f"{self.cfg.split}.jsonl"

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        records = []
        for key, row in read_jsonl(path, bad):
            if not isinstance(row.get("holds"), bool):
                bad.reject(key, "holds", "expected true or false")
                continue
            answer = "true" if row["holds"] else "false"
            records.append(QARecord(id=key, question=row["claim"], context=[], answer=answer))
        return records

    def choices(self, record: QARecord) -> list[str]:
        return ["true", "false"]

    def loglik_item(self, record: QARecord) -> LoglikItem:
        context = f"Claim: {record.question}\nTrue or false?\nAnswer:"
        return LoglikItem(context, [" true", " false"], 0 if record.answer == "true" else 1)


@register("reward_fn", "zorb_brevity")
def zorb_brevity(completions: list[Any], **_: Any) -> list[float]:
    """1 for an answer of at most five words, else 0."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [float(len(t.split()) <= 5) for t in texts]
