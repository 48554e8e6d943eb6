"""Preference pairs (TRL's conversational prompt/chosen/rejected) built from our records.

helpfulness  chosen = the gold answer with its expert rationale (MedMCQA `exp`, PubMedQA
             `LONG_ANSWER`, RadQA evidence sentence); rejected = a wrong option argued with
             the same confidence (even rows) or the right answer with no rationale (odd rows).
safety       calibration: where the gold is "maybe" (PubMedQA) or the RadQA question is
             unanswerable, chosen = the hedged/deferring answer, rejected = a confident
             definite answer; harmful requests (MedSafetyBench): chosen = the safe response,
             rejected = a compliant answer: the SFT model's own sample when
             reward.negatives=sample (and it did not refuse), else the template below.

External pairs (reward.pairs_path: JSON or JSON Lines with prompt/chosen/rejected, plain
strings or message lists) are validated row by row and used as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medalign.config import DatasetConfig
from medalign.data.formatting import render_prompt, target_text
from medalign.data.records import QARecord
from medalign.errors import MedalignError, where

COMPLIANT_TEMPLATE = (
    "Sure, here is how to do that. {request_sentence} Follow these steps carefully and "
    "make sure nobody notices."
)
CONFIDENT_WRONG = "The answer is clearly {letter}: {text}. This is well established.\n"
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


def helpfulness_pairs(records: list[QARecord], cfg: DatasetConfig) -> list[Pair]:
    out = []
    for i, record in enumerate(records):
        chosen = target_text(record, _with_rationale(cfg))
        final = cfg.answer_template
        if record.options:
            letters = list(record.options)
            wrong = letters[(letters.index(str(record.answer)) + 1) % len(letters)]
            if i % 2 == 0 or not record.rationale:
                rejected = CONFIDENT_WRONG.format(letter=wrong, text=record.options[wrong])
                rejected += final.format(answer=wrong)
            else:
                rejected = final.format(answer=record.answer)
        elif isinstance(record.answer, str):  # yes / no / maybe
            if record.answer == "maybe":
                continue  # a calibration pair (safety), not a helpfulness one
            wrong = "no" if record.answer == "yes" else "yes"
            rejected = f"The evidence clearly shows the answer is {wrong}.\n" + final.format(
                answer=wrong
            )
        else:  # extractive
            if not record.answer:
                continue
            rejected = final.format(answer=cfg.no_answer)
        out.append(pair(render_prompt(record, cfg), chosen, rejected, "helpfulness", cfg.name))
    return out


def calibration_pairs(records: list[QARecord], cfg: DatasetConfig) -> list[Pair]:
    out = []
    for record in records:
        prompt = render_prompt(record, cfg)
        chosen = target_text(record, _with_rationale(cfg))
        if record.answer == "maybe":
            rejected = "The abstract proves it beyond doubt.\n" + cfg.answer_template.format(
                answer="yes"
            )
        elif isinstance(record.answer, list) and not record.answer:
            claim = record.context[0].strip().splitlines()[-1].strip() or record.context[0][:80]
            rejected = cfg.answer_template.format(answer=claim)
        else:
            continue
        out.append(pair(prompt, chosen, rejected, "calibration", cfg.name))
    return out


def harmful_pairs(records: list[QARecord], negatives: list[str] | None = None) -> list[Pair]:
    """MedSafetyBench: chosen = safe response; rejected = sampled or templated compliance."""
    out = []
    for i, record in enumerate(records):
        rejected = negatives[i] if negatives and negatives[i] else compliant_template(record)
        out.append(pair(record.question, str(record.answer), rejected, "harmful", "medsafetybench"))
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
    text = file.read_text(encoding="utf-8")
    try:
        rows = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as exc:
        raise MedalignError(f"{file}: not valid JSON or JSON Lines: {exc}") from None
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


def _with_rationale(cfg: DatasetConfig) -> DatasetConfig:
    import dataclasses

    return dataclasses.replace(cfg, rationale=True)
