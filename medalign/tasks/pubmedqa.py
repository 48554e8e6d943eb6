"""PubMedQA PQA-L (`ori_pqal.json`) and its hub layout -> yes/no/maybe records.

The file is one JSON object keyed by PMID: QUESTION, CONTEXTS (abstract sections
without the conclusion), LABELS (their section names), MESHES, final_decision (gold)
and LONG_ANSWER (the conclusion, kept as the rationale). The official test split is the
500 PMIDs of `test_ground_truth.json` (beside `ori_pqal.json`; else the official list
shipped in tasks/assets/): split=train leaves those PMIDs out, split=test keeps exactly
them, and a test PMID missing from the data is an error (task_args.on_missing_test_ids),
as the official script asserts "all and only". The hub copy `qiaojin/PubMedQA`
(`pqa_labeled`; `pqa_artificial` for PQA-A) holds every row in one split: it is split
by the same PMID list. Evaluation reports accuracy and the official macro-F1.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

from medalign.data.files import FileHead, read_json
from medalign.data.records import BadRows, QARecord
from medalign.errors import MedalignError
from medalign.registry import register
from medalign.tasks.base import LoglikItem, Pair
from medalign.tasks.choice import ChoiceTask

log = logging.getLogger(__name__)
DECISIONS = ("yes", "no", "maybe")
TEST_IDS_FILE = "test_ground_truth.json"
ASSETS = Path(__file__).resolve().parent / "assets"


@register("task", "pubmedqa")
class PubMedQA(ChoiceTask):
    """yes/no/maybe over an abstract; lm-eval's `pubmedqa` prompt; accuracy + macro-F1."""

    name = "pubmedqa"
    rationale_source = "`LONG_ANSWER`"
    arg_defaults: ClassVar[dict[str, Any]] = {"on_missing_test_ids": "error"}  # or warn
    # the PubMedQA paper and leaderboard rank by accuracy (macro-F1 beside it); macro-F1
    # is not a mean over questions, so it cannot be paired question by question
    primary_metric = "acc"

    @classmethod
    def recognizes(cls, head: FileHead) -> bool:
        """`ori_pqal.json`: an object of PMIDs, each holding QUESTION, CONTEXTS ..."""
        if head.first_line == "{":
            return '"QUESTION"' in head.text
        row = head.first_row or {}
        return any(isinstance(v, dict) and "QUESTION" in v for v in row.values())

    def split_file(self, folder: Path) -> Path:
        return folder / "ori_pqal.json"

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        data = read_json(path)
        if not isinstance(data, dict):
            raise MedalignError(
                f"{path}: expected a JSON object keyed by PMID (PQA-L ori_pqal.json layout), "
                f"got a {type(data).__name__}"
            )
        rows = [(str(k), v) for k, v in data.items()]
        test_ids = _test_ids(path.with_name(TEST_IDS_FILE))
        return self._records(self._split(rows, test_ids, str(path)), bad)

    def source_files(self, path: Path) -> list[Path]:
        ids = path.with_name(TEST_IDS_FILE)  # the test PMIDs beside the data, when there
        return [path, ids] if ids.is_file() else [path]

    def hub_split(self) -> str:
        return "train"  # qiaojin/PubMedQA has one split with every row

    def check_eval_data(self, data_root: str | None) -> None:
        """Load the local evaluation set at start-up exactly as evaluation will (the
        official test ids all there, task_args.on_missing_test_ids; bad rows by
        on_bad_row), since evaluation reads it only after training. PQA-L is small
        (1,000 rows: well under a second). The hub copy is left to evaluation: fetching
        it here would put a download before every run."""
        if self.cfg.hub_id:
            return
        from medalign.data.loading import load_records

        load_records(self.cfg, data_root, key=self.key)

    def read_hub(self, rows: Any, bad: BadRows) -> list[QARecord]:
        pairs = [hub_row(row) for row in rows]
        return self._records(self._split(pairs, official_test_ids(), "the hub copy"), bad)

    def _split(
        self, rows: list[tuple[str, Any]], test_ids: set[str], source: str
    ) -> list[tuple[str, Any]]:
        split = self.cfg.split
        if split == "all":
            return rows
        if split not in ("train", "test"):
            raise MedalignError(
                f"dataset.split: PubMedQA PQA-L has train, test or all, not {split!r}"
            )
        if split == "train":
            return [(k, v) for k, v in rows if k not in test_ids]
        present = {k for k, _ in rows}
        missing = sorted(test_ids - present)
        if missing and len(missing) == len(test_ids):  # warn would leave nothing to score
            raise MedalignError(
                f"{source}: none of the {len(test_ids)} official test PMIDs is in the data "
                f"(e.g. {', '.join(missing[:3])}), so there is no test split to score: point "
                "the path at PQA-L (ori_pqal.json with its test_ground_truth.json), or read "
                "every row, unofficially, with split=all (dataset.split=all, or "
                "datasets.pubmedqa.eval_split=all for evaluation)"
            )
        if missing:
            message = (
                f"{source}: {len(missing)} of the {len(test_ids)} official test PMIDs are not in "
                f"the data (e.g. {', '.join(missing[:3])}); the official evaluation scores all "
                "and only the test PMIDs"
            )
            if self.args["on_missing_test_ids"] != "warn":
                raise MedalignError(
                    f"{message}. {self.key}.task_args.on_missing_test_ids=warn scores the ones "
                    "present"
                )
            log.warning("%s; scoring the %d present", message, len(test_ids) - len(missing))
        return [(k, v) for k, v in rows if k in test_ids]

    @staticmethod
    def _records(rows: list[tuple[str, Any]], bad: BadRows) -> list[QARecord]:
        return [r for key, row in rows if (r := to_record(key, row, bad)) is not None]

    def choices(self, record: QARecord) -> list[str]:
        return list(DECISIONS)

    def template_fields(self, record: QARecord) -> dict[str, str]:
        """{context}: the abstract sections, each with its label (BACKGROUND: ...)."""
        labels = record.meta.get("labels") or []
        sections = [
            f"{labels[i]}: {text.strip()}" if i < len(labels) and labels[i] else text.strip()
            for i, text in enumerate(record.context)
        ]
        return {**super().template_fields(record), "context": "\n".join(sections)}

    def loglik_item(self, record: QARecord) -> LoglikItem:
        """lm-eval `pubmedqa`: the raw sections joined by newlines, no labels."""
        context = "Abstract: {}\nQuestion: {}\nAnswer:".format(
            "\n".join(record.context), record.question
        )
        return LoglikItem(context, list(DECISIONS), DECISIONS.index(str(record.answer)))

    def breakdowns(
        self, records: list[QARecord], correct: list[float], predicted: list[str | None]
    ) -> dict[str, Any]:
        """Confusion matrix, the official macro-F1, and false confidence on "maybe"."""
        from sklearn.metrics import f1_score

        from medalign.eval.metrics import share

        labels = list(DECISIONS)
        matrix = {g: {p: 0 for p in [*labels, "unparseable"]} for g in labels}
        for record, pred in zip(records, predicted, strict=True):
            matrix[str(record.answer)][pred if pred in labels else "unparseable"] += 1
        gold = [str(r.answer) for r in records]
        shown = [p if p in labels else "unparseable" for p in predicted]
        macro = f1_score(gold, shown, labels=labels, average="macro", zero_division=0)
        flags = [
            float(p in ("yes", "no"))
            for r, p in zip(records, predicted, strict=True)
            if r.answer == "maybe" and p is not None
        ]
        return {
            "confusion": matrix,  # rows: gold, columns: predicted
            "metrics": {
                "macro_f1": {"value": float(macro), "n": len(records)},
                "false_confidence": share(flags),
            },
        }

    def pairs(
        self, records: list[QARecord], objective: str, negatives: list[str | None] | None = None
    ) -> list[Pair]:
        """helpfulness: the opposite definite answer argued; safety: calibration pairs
        (`calibration_pairs`)."""
        from medalign.rewards.pairs import pair

        if objective == "safety":
            return self.calibration_pairs(records)
        if objective == "helpfulness" and negatives is not None:
            return self.on_policy_pairs(records, negatives)
        out = []
        for record in records:
            if objective != "helpfulness" or record.answer == "maybe":
                continue
            wrong = "no" if record.answer == "yes" else "yes"
            rejected = f"The evidence clearly shows the answer is {wrong}.\n"
            rejected += self.final_line(wrong)
            chosen = self.target(record, rationale=True)
            out.append(pair(self.prompt(record), chosen, rejected, "helpfulness", self.cfg.name))
        return out

    def calibration_pairs(self, records: list[QARecord]) -> list[Pair]:
        """Say what the abstract supports, no more and no less: on each "maybe" question
        the hedge beats a definite answer (yes and no in turn); on as many definite
        questions the definite answer beats the hedge. Both sides are the answer line
        alone, so which one wins follows from reading the abstract, never from an answer's
        words (a fixed "proves it beyond doubt" rejected side was told apart by them)."""
        maybes = [r for r in records if r.answer == "maybe"]
        definite = [r for r in records if r.answer in ("yes", "no")][: len(maybes)]
        sides = [(r, "maybe", "yes" if k % 2 == 0 else "no") for k, r in enumerate(maybes)]
        sides += [(r, r.answer, "maybe") for r in definite]
        return self.answer_line_pairs(sides, "calibration")


def official_test_ids() -> set[str]:
    """The 500 PMIDs of the official PQA-L test split (shipped: a fact, not code)."""
    data = json.loads((ASSETS / "pubmedqa_test_pmids.json").read_text())
    return set(data["pmids"])


def _test_ids(ids_file: Path) -> set[str]:
    """The test PMIDs: test_ground_truth.json beside the data, else the official list."""
    if not ids_file.is_file():
        return official_test_ids()
    return {str(k) for k in read_json(ids_file)}


def hub_row(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A `qiaojin/PubMedQA` row in the original field names."""
    context = row.get("context") or {}
    return str(row.get("pubid")), {
        "QUESTION": row.get("question"),
        "CONTEXTS": context.get("contexts"),
        "LABELS": context.get("labels"),
        "MESHES": context.get("meshes"),
        "final_decision": row.get("final_decision"),
        "LONG_ANSWER": row.get("long_answer"),
    }


def to_record(key: str, row: Any, bad: BadRows) -> QARecord | None:
    if not isinstance(row, dict):
        bad.reject(key, "<row>", f"expected an object, got {type(row).__name__}")
        return None
    question = row.get("QUESTION")
    if not isinstance(question, str) or not question.strip():
        bad.reject(key, "QUESTION", "missing or empty")
        return None
    contexts = row.get("CONTEXTS")
    if not isinstance(contexts, list) or not contexts:
        bad.reject(key, "CONTEXTS", "missing or empty list of abstract sections")
        return None
    if not all(isinstance(c, str) for c in contexts):
        bad.reject(key, "CONTEXTS", "every entry must be a string")
        return None
    decision = row.get("final_decision")
    if decision not in DECISIONS:
        bad.reject(key, "final_decision", f"{decision!r} is not one of yes/no/maybe")
        return None
    for field_name in ("LABELS", "MESHES"):
        value = row.get(field_name)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            bad.reject(key, field_name, f"expected a list of strings, got {value!r:.40}")
            return None
    long_answer = row.get("LONG_ANSWER")
    return QARecord(
        id=key,
        question=question,
        context=list(contexts),
        answer=decision,
        rationale=long_answer.strip() if isinstance(long_answer, str) else None,
        meta={"labels": list(row.get("LABELS") or []), "meshes": list(row.get("MESHES") or [])},
    )
