"""Preference pairs ranked by the rewards: the policy's own best-of-n against its worst-of-n.

    python -m medalign stage=rl rl=dpo rl.pairs=ranked init_from=<SFT run> reward.models.…

UltraMedical's recipe (SFT, then DPO/KTO on reward-ranked pairs): for each RL prompt
(rl.datasets, the same rows GRPO trains on) the SFT model samples `rl.num_generations`
answers at `rl.temperature`; each answer is scored by the same weighted rewards GRPO
would optimize (`reward.weights`: correctness and format on questions, each trained
reward model on its scale on the prompts its Task declares, rewards/functions.py); the
highest-scoring answer is chosen, the lowest rejected. A prompt whose answers all score
alike teaches nothing and gives no pair (counted). Why on-policy: DPO on pairs the policy
would never write (the reward stage's templated negatives) moves probability the policy
never spends; its own best and worst answers differ where it actually errs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from medalign.config import GenerateConfig, RunConfig
from medalign.errors import MedalignError

log = logging.getLogger(__name__)
TIE = 1e-6  # answers whose totals differ by less are alike: no pair


def ranked_pairs(
    cfg: RunConfig, model: Any, tokenizer: Any, out: Path | None = None
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(pairs in the reward stage's form, stats); the pairs also go to
    `out/ranked_pairs.jsonl` with each side's total, for a reader to check."""
    from medalign.models.inference import chat_completions
    from medalign.rewards.functions import build_reward_functions
    from medalign.rewards.pairs import pair
    from medalign.rewards.rl_prompts import prompt_rows

    rows = prompt_rows(cfg)
    n = cfg.rl.num_generations
    if n < 2:
        raise MedalignError(f"rl.pairs=ranked: rl.num_generations={n}; a pair needs 2 or more")
    settings = GenerateConfig(
        input=None,
        output=None,
        batch_size=cfg.eval.batch_size,
        max_new_tokens=cfg.rl.max_completion_length,
        do_sample=True,
        temperature=cfg.rl.temperature,
        top_p=1.0,
        system_prompt=None,
    )
    prompts = [row["prompt"] for row in rows for _ in range(n)]
    texts = chat_completions(model, tokenizer, prompts, settings, where="sampling ranked pairs")
    totals = weighted_totals(
        build_reward_functions(
            dict(cfg.reward.weights), dict(cfg.reward.models), cfg.reward.length_target
        ),
        prompts,
        texts,
        [row["task"] for row in rows for _ in range(n)],
        [row["reference"] for row in rows for _ in range(n)],
    )
    pairs, kept, spread = [], [], []
    for i, row in enumerate(rows):
        group = list(range(i * n, (i + 1) * n))
        best = max(group, key=lambda j: totals[j])
        worst = min(group, key=lambda j: totals[j])
        if totals[best] - totals[worst] < TIE:
            continue
        text = row["prompt"][0]["content"]
        pairs.append(pair(text, texts[best], texts[worst], "ranked", row["task"]))
        kept.append(
            {
                "prompt": text,
                "task": row["task"],
                "chosen": texts[best],
                "rejected": texts[worst],
                "chosen_total": totals[best],
                "rejected_total": totals[worst],
            }
        )
        spread.append(totals[best] - totals[worst])
    if not pairs:
        raise MedalignError(
            f"rl.pairs=ranked: every one of {len(rows)} prompts' {n} samples scored alike "
            "under reward.weights, so no pair ranks one answer above another; raise "
            "rl.temperature or rl.num_generations, or train the SFT model further"
        )
    if out is not None:
        with (out / "ranked_pairs.jsonl").open("w") as handle:
            for row in kept:
                handle.write(json.dumps(row) + "\n")
    stats = {
        "rl/ranked_prompts": len(rows),
        "rl/ranked_pairs": len(pairs),
        "rl/ranked_ties": len(rows) - len(pairs),
        "rl/ranked_margin_mean": sum(spread) / len(spread),
    }
    log.info(
        "ranked pairs: %d of %d prompts (the rest: all %d samples scored alike), mean margin %.3f",
        len(pairs),
        len(rows),
        n,
        stats["rl/ranked_margin_mean"],
    )
    return pairs, stats


def weighted_totals(
    functions: tuple[list[Any], list[float]],
    prompts: list[Any],
    texts: list[str],
    tasks: list[str],
    references: list[str],
) -> list[float]:
    """Each answer's weighted sum over the rewards that score it (a scoped reward's None
    is left out, as TRL's GRPO leaves it out)."""
    fns, weights = functions
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    totals = [0.0] * len(texts)
    for fn, weight in zip(fns, weights, strict=True):
        values = fn(prompts=prompts, completions=completions, task=tasks, reference=references)
        for j, value in enumerate(values):
            if value is not None:
                totals[j] += weight * float(value)
    return totals
