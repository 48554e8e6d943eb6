"""The prompts online RL (GRPO, RLOO) trains on, with what the reward functions read.

Each row: the chat prompt its Task renders, the Task's name, and the Task's JSON
`reference` (gold letter and choices, answer spans, …) that `correctness` scores against.
"""

from __future__ import annotations

import json
from typing import Any

from medalign.config import RunConfig
from medalign.data.loading import catalogue_config, get_task, load_records
from medalign.errors import MedalignError


def prompt_rows(cfg: RunConfig) -> list[dict[str, Any]]:
    """RL prompts with the columns the reward functions read: `task` and the Task's
    JSON `reference` (gold letter and choices, spans, …)."""
    rows = []
    for name in cfg.rl.datasets:
        dcfg = catalogue_config(cfg, name, "rl.datasets")
        task = get_task(dcfg)
        records = load_records(dcfg, cfg.data_root).records[: cfg.rl.limit or None]
        for record in records:
            reference = task.reward_reference(record)
            if reference is None:
                continue
            rows.append(
                {
                    "prompt": [{"role": "user", "content": task.prompt(record)}],
                    "task": task.name,
                    "reference": json.dumps(reference),
                }
            )
    if not rows:
        raise MedalignError(f"rl.datasets={cfg.rl.datasets}: no prompt with a reference answer")
    return rows
