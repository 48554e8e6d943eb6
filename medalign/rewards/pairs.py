"""Preference pairs in TRL's conversational prompt/chosen/rejected form.

Which pairs a dataset yields is its Task's business (`Task.pairs`, e.g. a wrong option
argued with confidence for MedMCQA, PubMedQA's and RadQA's calibration pairs in both
directions (Task.answer_line_pairs), a compliant answer to a harmful MedSafetyBench
request); this module holds the pair shape, the templated compliant answer, and external
pairs.

External pairs (reward.pairs_path: JSON or JSON Lines with prompt/chosen/rejected, plain
strings or message lists) are validated row by row and used as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medalign.data.files import read_json_or_jsonl
from medalign.data.records import QARecord
from medalign.errors import MedalignError, where

COMPLIANT_TEMPLATE = (
    "Sure, here is how to do that. {request_sentence} Follow these steps carefully and "
    "make sure nobody notices."
)
Pair = dict[str, Any]


def _msgs(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


def pair(prompt: str, chosen: str, rejected: str, kind: str, source: str) -> Pair:
    return {
        "prompt": _msgs("user", prompt),
        "chosen": _msgs("assistant", chosen),
        "rejected": _msgs("assistant", rejected),
        "kind": kind,
        "source": source,
    }


def mismatched_pairs(
    records: list[QARecord], chosen: list[str], kind: str, source: str
) -> list[Pair]:
    """Each prompt's own response against the response written for another prompt (the
    next row whose question and response both differ): a reward model trained on these
    checks that a response answers the prompt it is given. Why: without them the world's
    safety model scored one fixed refusal, naming another disease's drug, high on every
    prompt, and GRPO collapsed onto it (experiments/README.md, 2026-12-07)."""
    out, n = [], len(records)
    for i, record in enumerate(records):
        other = next(
            (
                chosen[j]
                for j in ((i + k) % n for k in range(2, n + 1))
                if chosen[j] != chosen[i] and records[j].question != record.question
            ),
            None,
        )
        if other is not None:
            out.append(pair(record.question, chosen[i], other, kind, source))
    return out


def compliant_template(record: QARecord) -> str:
    request = record.question.rstrip("?.! ")
    sentence = request[0].upper() + request[1:] + ": first, do exactly what was asked."
    return COMPLIANT_TEMPLATE.format(request_sentence=sentence)


def load_hub_pairs(hub_id: str) -> list[Pair]:
    """Pairs from a hub dataset in TRL's preference format (train split)."""
    import datasets

    try:
        rows = datasets.load_dataset(hub_id, split="train")
    except Exception as exc:  # the hub raises many types; all mean "not reachable/found"
        raise MedalignError(f"reward.pairs_hub_id: cannot load {hub_id!r}: {exc}") from None
    return [_external_pair(Path(f"hub:{hub_id}"), i, dict(row)) for i, row in enumerate(rows, 1)]


def load_external_pairs(path: str) -> list[Pair]:
    """Pairs from a JSON (list) or JSON Lines file, validated row by row."""
    file = Path(path)
    if not file.is_file():
        raise MedalignError(f"reward.pairs_path: file not found: {file}")
    rows = read_json_or_jsonl(file)
    return [_external_pair(file, i, row) for i, row in enumerate(rows, start=1)]


def _external_pair(file: Path, number: int, row: Any) -> Pair:
    if not isinstance(row, dict):
        raise MedalignError(
            f"{where(file, number)}: expected an object with prompt/chosen/rejected"
        )
    out: Pair = {"kind": "external", "source": str(file)}
    for field_name, role in (
        ("prompt", "user"),
        ("chosen", "assistant"),
        ("rejected", "assistant"),
    ):
        value = row.get(field_name)
        if value is None and field_name == "prompt":
            value = ""
        if value is None:
            raise MedalignError(f"{where(file, number, field_name)}: missing")
        messages = _msgs(role, value) if isinstance(value, str) else value
        text = messages[-1].get("content", "") if isinstance(messages, list) and messages else ""
        if field_name != "prompt" and not str(text).strip():
            raise MedalignError(f"{where(file, number, field_name)}: empty completion")
        out[field_name] = messages
    if out["chosen"] == out["rejected"]:
        raise MedalignError(f"{where(file, number, 'rejected')}: identical to chosen")
    return out
