"""Unpaired preference rows for KTO: each pair split in two, or thumbs-up/down feedback.

    python -m medalign stage=rl rl=kto init_from=<sft run>                      (the pairs)
    python -m medalign stage=rl rl=kto rl.feedback_path=ratings.jsonl init_from=<sft run>

KTO learns from single completions marked desirable or not (TRL's unpaired preference
format: prompt, completion, label). From the reward stage's pairs, the chosen answer is a
desirable row and the rejected one an undesirable row. A feedback file (`rl.feedback_path`,
JSON or JSON Lines) holds one rated answer per row:

    {"prompt": "Is 150/95 mmHg high?", "completion": "Yes, ...", "label": true}

`label` is true/false, 1/0 or "up"/"down"; `prompt` and `completion` are plain strings
or chat message lists. Each row is checked; a bad one is refused with file, row and field.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from medalign.data.files import read_json_or_jsonl
from medalign.errors import MedalignError, where

WORDS = {"up": True, "down": False, "true": True, "false": False}


def unpaired_rows(pairs: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Chosen -> label True, rejected -> label False, shuffled with `seed` (KTO samples
    sequentially, so a batch holds both kinds)."""
    rows = []
    for p in pairs:
        rows.append({"prompt": p["prompt"], "completion": p["chosen"], "label": True})
        rows.append({"prompt": p["prompt"], "completion": p["rejected"], "label": False})
    random.Random(seed).shuffle(rows)
    return rows


def load_feedback(path: str) -> list[dict[str, Any]]:
    """Rated answers from a JSON (list) or JSON Lines file, validated row by row."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise MedalignError(f"rl.feedback_path: file not found: {file}")
    rows = read_json_or_jsonl(file)
    out = [_row(file, number, row) for number, row in enumerate(rows, start=1)]
    if len(out) < 2:
        raise MedalignError(f"rl.feedback_path: {file} has {len(out)} rated rows; need >= 2")
    return out


def _row(file: Path, number: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise MedalignError(
            f"{where(file, number)}: expected an object with prompt/completion/label"
        )
    label = _rating(row.get("label"))
    if label is None:
        raise MedalignError(
            f"{where(file, number, 'label')}: {row.get('label')!r} is not a rating; "
            'use true/false, 1/0 or "up"/"down"'
        )
    out: dict[str, Any] = {"label": label}
    for field_name, role in (("prompt", "user"), ("completion", "assistant")):
        value = row.get(field_name)
        if value is None:
            raise MedalignError(f"{where(file, number, field_name)}: missing")
        messages = [{"role": role, "content": value}] if isinstance(value, str) else value
        if not (isinstance(messages, list) and messages and isinstance(messages[-1], dict)):
            raise MedalignError(
                f"{where(file, number, field_name)}: expected a string or a list of messages"
            )
        if not str(messages[-1].get("content", "")).strip():
            raise MedalignError(f"{where(file, number, field_name)}: empty")
        out[field_name] = messages
    return out


def _rating(value: Any) -> bool | None:
    """true/false, 1/0, "up"/"down" -> bool; anything else -> None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return WORDS.get(value.strip().lower())
    return None
