"""RadQA (SQuAD v2 JSON over radiology reports) -> extractive records, unanswerable kept.

`data[].paragraphs[].{context, qas[].{id, question, answers[{text, answer_start}],
is_impossible}}`. Every answer span is checked against its `answer_start` offset (a
mismatch means a shifted or edited context); dev and test questions carry up to three
annotators' spans, all kept (distinct, in order) for scoring. The rationale is the
report sentence holding the first answer: the evidence (an unanswerable question's says
that no sentence answers it, NO_EVIDENCE). The real data is credentialed
(PhysioNet): point `dataset.path` at your copy.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from medalign.data.files import FileHead, read_json
from medalign.data.records import BadRows, QARecord
from medalign.errors import MedalignError
from medalign.registry import register
from medalign.tasks.base import EvalContext, Pair, Task

_SENTENCE = re.compile(r"[^.]*(?:\.|$)")


@register("task", "radqa")
class RadQA(Task):
    """Extractive QA, SQuAD v2 scoring (EM/F1, HasAns/NoAns), unanswerables kept."""

    name = "radqa"
    rationale_source = "the report sentence holding the answer"
    dev_split = "dev"
    eval_modes = ("generate",)
    primary_metric = "f1"  # SQuAD-style token F1, as RadQA's paper reports it

    @classmethod
    def recognizes(cls, head: FileHead) -> bool:
        """SQuAD v2: an object with a `data` list of articles holding `paragraphs`
        (pretty-printed, or on one line)."""
        if head.first_line == "{":
            return '"data"' in head.text and '"paragraphs"' in head.text
        return (
            head.first_row is not None
            and "data" in head.first_row
            and ("paragraphs" in head.first_line)
        )

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        doc = read_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise MedalignError(f"{path}: expected a SQuAD-v2 style object with a 'data' list")
        records = []
        for article in doc["data"]:
            for paragraph in (
                article.get("paragraphs") if isinstance(article, dict) else None
            ) or []:
                context = paragraph.get("context")
                if not isinstance(paragraph, dict):
                    bad.reject("<paragraph>", "paragraphs", "expected an object")
                    continue
                for qa in paragraph.get("qas") or []:
                    record = to_record(qa, context, paragraph.get("document_id"), bad)
                    if record is not None:
                        records.append(record)
        return records

    def read_hub(self, rows: Any, bad: BadRows) -> list[QARecord]:
        """Flat SQuAD v2 hub rows: id, context, question, answers {text: [], answer_start: []}."""
        records = []
        for row in rows:
            answers = row.get("answers") or {}
            spans = [
                {"text": t, "answer_start": s}
                for t, s in zip(
                    answers.get("text", []), answers.get("answer_start", []), strict=False
                )
            ]
            qa = {
                "id": row.get("id"),
                "question": row.get("question"),
                "answers": spans,
                "is_impossible": not spans,
            }
            record = to_record(qa, row.get("context"), row.get("title"), bad)
            if record is not None:
                records.append(record)
        return records

    def cluster(self, record: QARecord) -> str | None:
        """Questions on one report share its difficulty: compared as one cluster (the
        report's document id, or its text where the file names none)."""
        document = record.meta.get("document_id")
        if document is not None:
            return str(document)
        return hashlib.sha256(record.context[0].encode()).hexdigest()[:12]

    def template_fields(self, record: QARecord) -> dict[str, str]:
        return {**super().template_fields(record), "report": record.context[0]}

    def parse(self, text: str, record: QARecord) -> str | None:
        from medalign.eval.parsing import parse_span

        return parse_span(text, self.cfg.no_answer)

    def evaluate(
        self, ctx: EvalContext, records: list[QARecord], mode: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from medalign.eval.extractive import score_spans

        return score_spans(self, ctx, records)

    def reward_reference(self, record: QARecord) -> dict[str, Any] | None:
        return {"golds": list(record.answer), "no_answer": self.cfg.no_answer}

    @classmethod
    def correctness(cls, text: str, reference: dict[str, Any]) -> float:
        """SQuAD F1 of the parsed span; unparseable scores 0."""
        from medalign.eval.parsing import parse_span
        from medalign.eval.squad import score

        span = parse_span(text, reference["no_answer"])
        return 0.0 if span is None else score(list(reference["golds"]), span)[1]

    def pairs(
        self, records: list[QARecord], objective: str, negatives: list[str | None] | None = None
    ) -> list[Pair]:
        """helpfulness: the evidence + span beats "no answer"; safety: calibration pairs
        (`calibration_pairs`)."""
        from medalign.rewards.pairs import pair

        if objective == "safety":
            return self.calibration_pairs(records)
        out = []
        for record in records:
            if objective == "helpfulness" and record.answer:
                chosen = self.target(record, rationale=True)
                rejected = self.final_line(self.cfg.no_answer)
                out.append(
                    pair(self.prompt(record), chosen, rejected, "helpfulness", self.cfg.name)
                )
        return out

    def calibration_pairs(self, records: list[QARecord]) -> list[Pair]:
        """Answer only what the report states: on an unanswerable question "the report
        does not answer" beats a finding the report does state (an answerable question's
        answer on the same report; else the report's last line); on as many answerable
        questions the answer beats "does not answer". Both sides are the answer line
        alone, and the same lines win in one pair and lose in another, so which one wins
        follows from reading the question against the report."""
        stated = {}  # report -> an answer some question on it has
        for r in records:
            if r.answer:
                stated.setdefault(r.context[0], self.answer_text(r))
        unanswerable = [r for r in records if not r.answer]
        answerable = [r for r in records if r.answer][: len(unanswerable)]
        none = self.cfg.no_answer
        sides = []
        for r in unanswerable:
            report = r.context[0].strip()
            sides.append((r, none, stated.get(r.context[0]) or report.splitlines()[-1].strip()))
        sides += [(r, self.answer_text(r), none) for r in answerable]
        return self.answer_line_pairs(sides, "calibration")


def to_record(qa: Any, context: Any, document: Any, bad: BadRows) -> QARecord | None:
    key = str(qa.get("id")) if isinstance(qa, dict) else "?"
    if not isinstance(qa, dict):
        bad.reject(key, "qas", f"expected a question object, got {type(qa).__name__}")
        return None
    if not isinstance(context, str) or not context.strip():
        bad.reject(key, "context", "missing or empty report text")
        return None
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        bad.reject(key, "question", "missing or empty")
        return None
    answers = qa.get("answers")
    if not isinstance(answers, list):
        bad.reject(key, "answers", "missing (use [] for an unanswerable question)")
        return None
    spans: list[str] = []
    starts: list[int] = []
    for answer in answers:
        if not isinstance(answer, dict):
            bad.reject(key, "answers", f"each answer must be an object, got {answer!r:.40}")
            return None
        text, start = answer.get("text"), answer.get("answer_start")
        if not isinstance(text, str) or not isinstance(start, int):
            bad.reject(key, "answers", "each answer needs a 'text' string and an 'answer_start'")
            return None
        found = context[start : start + len(text)]
        if found != text:
            bad.reject(
                key,
                "answer_start",
                f"{start} does not match the context: expected {text!r}, found {found!r}",
            )
            return None
        if text not in spans:
            spans.append(text)
            starts.append(start)
    if bool(qa.get("is_impossible", not spans)) != (not spans):
        bad.reject(
            key, "is_impossible", f"is {qa.get('is_impossible')} but there are {len(spans)} answers"
        )
        return None
    return QARecord(
        id=key,
        question=question,
        context=[context],
        answer=spans,
        rationale=evidence_sentence(context, starts[0]) if starts else NO_EVIDENCE,
        meta={"document_id": document, "answer_starts": starts},
    )


# an unanswerable question's rationale: that no sentence of the report answers it (SQuAD
# v2 layouts name no evidence, so this is the one statement the data supports)
NO_EVIDENCE = "No sentence of the report answers this question."


def evidence_sentence(context: str, start: int) -> str:
    """The sentence of `context` that contains character `start`, whitespace collapsed."""
    for match in _SENTENCE.finditer(context):
        if match.start() <= start < max(match.end(), match.start() + 1):
            return " ".join(match.group().split())
    return ""
