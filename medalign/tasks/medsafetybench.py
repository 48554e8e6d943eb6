"""MedSafetyBench (CSV: index, harmful_medical_request, safe_response) -> safety records.

Harmful medical requests, each with a safe response, in nine files per source, one per
principle of the AMA Code of Medical Ethics (`med_safety_demonstrations_category_N.csv`).
A folder path is the benchmark's `datasets/` folder (or any folder holding `train/` and
`test/`); `split` picks the sub-folder and every CSV below it is read. The record's
question is the request, its answer the safe response, `meta.category` the principle.
An optional `unsafe_response` column (not in the benchmark; the synthetic world writes
one) is the data author's own unsafe answer to the request: the safety pair's rejected
side, before an on-policy sample or the templated compliant answer. An optional
`contraindicated_drug` column (the world's too) is the drug a response must not recommend:
the safe-response rate is then judged against it (eval/outcomes.py), not by refusal alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from medalign.data.files import FileHead, read_csv_table
from medalign.data.records import BadRows, QARecord
from medalign.errors import MedalignError
from medalign.eval.outcomes import DRUG
from medalign.registry import register
from medalign.tasks.base import Pair
from medalign.tasks.safety import SafetyTask

COLUMNS = ("harmful_medical_request", "safe_response")
UNSAFE = "unsafe_response"  # optional: a hard negative for the safety pairs
_CATEGORY = re.compile(r"category_(\d+)")


@register("task", "medsafetybench")
class MedSafetyBench(SafetyTask):
    """Harmful requests: refusal rate, safety reward, judge; harmful preference pairs."""

    name = "medsafetybench"
    # the claim: the safe-response rate, judged against each request's contraindicated
    # drug (eval/outcomes.py); on data that names none (real MedSafetyBench) the refusal
    # rate, the first of compare's FALLBACK_PRIMARY the rows scored
    primary_metric = "safe_response_rate"
    # mismatched_pairs: also pair each safe response against the one written for another
    # request (rewards/pairs.py), so the safety model checks a refusal is about the request.
    # compliant_pairs: where a row's rejected side is its own unsafe_response (a hard
    # negative, e.g. the world's refusal with the two drugs swapped), also its safe response
    # against a compliant answer (the policy's own, else the templated one), kind
    # `compliant`: without them nothing tells the safety model that complying is worse than
    # refusing a request, and GRPO taught the world's policy to answer every one
    # (experiments/README.md, 2026-12-07, late)
    arg_defaults = {"mismatched_pairs": False, "compliant_pairs": False}

    @classmethod
    def recognizes(cls, head: FileHead) -> bool:
        """A CSV whose header names the request column."""
        return COLUMNS[0] in head.first_line

    def split_file(self, folder: Path) -> Path:
        split = folder / self.cfg.split
        return split if split.is_dir() else folder

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
        if not files:
            raise MedalignError(f"{path}: no MedSafetyBench CSV files there")
        records = []
        for file in files:
            header, rows = read_csv_table(file)  # not UTF-8, bad CSV: one clear error
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise MedalignError(
                    f"{file}: not a MedSafetyBench CSV: missing column {missing[0]!r} "
                    f"(header: {header})"
                )
            for number, row in rows:
                record = to_record(file, number, row, bad)
                if record is not None:
                    records.append(record)
        return records

    def read_hub(self, rows: Any, bad: BadRows) -> list[QARecord]:
        out = [to_record(Path("hub"), i, dict(row), bad) for i, row in enumerate(rows)]
        return [r for r in out if r is not None]

    def template_fields(self, record: QARecord) -> dict[str, str]:
        category = str(record.meta.get("category") or "")
        return {**super().template_fields(record), "category": category}

    @staticmethod
    def harmful(record: QARecord) -> bool:
        """Every MedSafetyBench request is harmful (its safe response refuses it)."""
        return True

    def pairs(
        self, records: list[QARecord], objective: str, negatives: list[str | None] | None = None
    ) -> list[Pair]:
        """safety: chosen = the safe response; rejected = the row's own unsafe_response
        where the data has one, else the policy's own compliant sample
        (reward.negatives=sample, when it did not refuse), else a templated one; with
        task_args.mismatched_pairs, also the safe response written for another request;
        with task_args.compliant_pairs, a row with an unsafe_response also yields the safe
        response against the compliant negative it would have had without one."""
        from medalign.rewards.pairs import compliant_template, mismatched_pairs, pair

        if objective != "safety":
            return []
        out = []
        for i, record in enumerate(records):
            compliant = (negatives[i] if negatives else None) or compliant_template(record)
            unsafe = record.meta.get(UNSAFE)
            safe = str(record.answer)
            out.append(pair(record.question, safe, unsafe or compliant, "harmful", self.name))
            if unsafe and self.args["compliant_pairs"]:
                out.append(pair(record.question, safe, compliant, "compliant", self.name))
        if self.args["mismatched_pairs"]:  # and against another request's safe response
            out += mismatched_pairs(records, [str(r.answer) for r in records], "harmful", self.name)
        return out


def to_record(file: Path, number: int, row: dict[str, Any], bad: BadRows) -> QARecord | None:
    key = f"{file.name} line {number}"
    request, safe = row.get(COLUMNS[0]), row.get(COLUMNS[1])
    if not isinstance(request, str) or not request.strip():
        bad.reject(key, COLUMNS[0], "missing or empty")
        return None
    if not isinstance(safe, str) or not safe.strip():
        bad.reject(key, COLUMNS[1], "missing or empty")
        return None
    unsafe = row.get(UNSAFE)  # an empty cell: no unsafe answer for this row
    category = _CATEGORY.search(file.name)
    meta = {"category": int(category.group(1)) if category else None, "source": file.parent.name}
    drug = str(row.get(DRUG) or "").strip()
    if drug:
        meta[DRUG] = drug
    return QARecord(
        id=f"{file.parent.name}/{file.stem}:{number}",
        question=request.strip(),
        context=[],
        answer=safe.strip(),
        meta={**meta, UNSAFE: unsafe.strip()}
        if isinstance(unsafe, str) and unsafe.strip()
        else meta,
    )
