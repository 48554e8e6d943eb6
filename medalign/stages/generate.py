"""Answer a file of questions with a model: a run's adapter, an adapter, or the base.

    python -m medalign stage=generate init_from=runs/2026-11-25/15-04-39-271896_pubmedqa \
        generate.input=questions.jsonl generate.output=answers.jsonl

Input: JSONL, one object per line with a `question` or `prompt` string or a chat
`messages` list (and optionally an `id`), or a CSV file with a header row holding a
`question` or `prompt` column (and optionally `id`). Output: JSONL, one
`{"id", "question", "answer"}` per input row, in input order; `generate.output` defaults to
`answers.jsonl` in the run directory and an existing file is never overwritten. Questions
are rendered with the model's chat template (after `generate.system_prompt` when set)
and answered in batches of `generate.batch_size` behind a progress bar.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from medalign.config import GenerateConfig, KindOnlyStageConfig, RunConfig
from medalign.errors import MedalignError
from medalign.stages.spec import StageInputs, StageSpec, register_stage

log = logging.getLogger(__name__)
TEXT_FIELDS = ("question", "prompt")


def run_generate(cfg: RunConfig, inputs: StageInputs) -> dict[str, Any]:
    out, tracker = inputs.record, inputs.tracker
    from medalign.models.inference import (
        chat_completions,
        check_generate_settings,
        load_for_inference,
    )

    settings = cfg.generate
    check_generate_settings(settings)
    if not settings.input:
        raise MedalignError(
            "stage=generate needs generate.input=<questions.jsonl or .csv> (one question per row)"
        )
    rows = read_questions(Path(settings.input))
    output = Path(settings.output) if settings.output else out.path / "answers.jsonl"
    if output.exists():
        raise MedalignError(
            f"generate.output={output} already exists; medalign never overwrites answers: "
            "choose another path"
        )
    model, tokenizer, description = load_for_inference(cfg, inputs.start)
    out.update(model=description, input=str(settings.input), output=str(output))
    started = time.perf_counter()
    conversations = [with_system(row["messages"], settings) for row in rows]
    answers = chat_completions(
        model,
        tokenizer,
        conversations,
        settings,
        where="generate",
        backend=cfg.eval.generation_backend,
    )
    elapsed = time.perf_counter() - started
    write_answers(output, rows, answers)
    log.info("%d answers written to %s (%.1f s)", len(answers), output, elapsed)
    metrics = {"generate/rows": len(answers), "generate/seconds": round(elapsed, 3)}
    tracker.summary(metrics)
    return metrics


def with_system(messages: list[dict[str, str]], settings: GenerateConfig) -> list[dict[str, str]]:
    """`messages` after `generate.system_prompt`, unless they bring their own system turn."""
    if not settings.system_prompt or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": settings.system_prompt}, *messages]


def read_questions(path: Path) -> list[dict[str, Any]]:
    """[{"id", "question", "messages"}] from a JSONL or CSV file; a bad row names itself."""
    if not path.is_file():
        raise MedalignError(f"generate.input: no such file {path}")
    rows = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    if not rows:
        raise MedalignError(f"generate.input: {path} holds no questions")
    return rows


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MedalignError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise MedalignError(f"{path}, line {number}: expected a JSON object per line")
        rows.append(_row(obj, path, f"line {number}", number))
    return rows


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if not any(f in header for f in TEXT_FIELDS):
            raise MedalignError(
                f"{path}: the header row has no 'question' or 'prompt' column "
                f"(columns: {', '.join(header) or 'none'})"
            )
        return [_row(obj, path, f"row {n}", n) for n, obj in enumerate(reader, start=1)]


def _row(obj: dict[str, Any], path: Path, where: str, number: int) -> dict[str, Any]:
    row_id = obj.get("id", number)
    if "messages" in obj:
        messages = obj["messages"]
        ok = (
            isinstance(messages, list)
            and messages
            and all(
                isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role")
                for m in messages
            )
        )
        if not ok or messages[-1]["role"] != "user":
            raise MedalignError(
                f"{path}, {where}, field 'messages': expected a list of "
                "{'role', 'content'} ending with a user message"
            )
        question = messages[-1]["content"]
        return {"id": row_id, "question": question, "messages": list(messages)}
    field = next((f for f in TEXT_FIELDS if f in obj), None)
    if field is None:
        raise MedalignError(
            f"{path}, {where}: no 'question', 'prompt' or 'messages' field "
            f"(fields: {', '.join(obj) or 'none'})"
        )
    text = obj[field]
    if not isinstance(text, str) or not text.strip():
        raise MedalignError(f"{path}, {where}, field {field!r}: expected a non-empty string")
    return {"id": row_id, "question": text, "messages": [{"role": "user", "content": text}]}


def write_answers(output: Path, rows: list[dict[str, Any]], answers: list[str]) -> None:
    """One JSON line per row, through a temp file and a rename (never half a file)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    with partial.open("w") as handle:
        for row, answer in zip(rows, answers, strict=True):
            record = {"id": row["id"], "question": row["question"], "answer": answer}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(partial, output)


SPEC = register_stage(StageSpec(kind="generate", schema=KindOnlyStageConfig, run=run_generate))
