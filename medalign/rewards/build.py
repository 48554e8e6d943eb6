"""Assemble the preference pairs a reward (or DPO) stage trains on, per objective."""

from __future__ import annotations

import logging
import random
from typing import Any

from medalign.config import RunConfig
from medalign.data.loading import catalogue_config, get_task, load_records
from medalign.errors import MedalignError
from medalign.rewards import pairs as P

log = logging.getLogger(__name__)


def build_pairs(
    cfg: RunConfig, sampler: Any = None, chooser: Any = None
) -> dict[str, list[P.Pair]]:
    """{objective: pairs}, each dataset's pairs from its Task. With reward.negatives=sample
    the negatives are on-policy: `sampler(prompts) -> texts` answers the harmful requests
    (safety), `chooser(task, records) -> answer lines` names the policy's likeliest wrong
    choice for each choice question (helpfulness)."""
    rc = cfg.reward
    objectives = ["helpfulness", "safety"] if rc.objective == "both" else [rc.objective]
    sources = list(dict.fromkeys([*rc.datasets, *rc.safety_datasets]))
    loaded = []
    for name in sources:
        dcfg = catalogue_config(cfg, name, "reward.datasets")
        loaded.append((get_task(dcfg), load_records(dcfg, cfg.data_root).records))
    out: dict[str, list[P.Pair]] = {}
    for objective in objectives:
        pairs: list[P.Pair] = []
        for task, records in loaded:
            negatives = None
            on_policy = rc.negatives == "sample" and sampler is not None
            if objective == "safety" and on_policy and task.cfg.name in rc.safety_datasets:
                negatives = _on_policy_negatives(sampler, records)
            elif objective == "helpfulness" and on_policy and chooser is not None:
                negatives = chooser(task, records)  # None: the task has no choices
            pairs += task.pairs(records, objective, negatives)
        if rc.pairs_path:
            pairs += P.load_external_pairs(rc.pairs_path)
        if rc.pairs_hub_id:
            pairs += P.load_hub_pairs(rc.pairs_hub_id)
        pairs = [p for p in pairs if p["chosen"] != p["rejected"]]
        random.Random(cfg.seed).shuffle(pairs)
        if rc.limit:
            pairs = pairs[: rc.limit]
        if len(pairs) < 4:
            raise MedalignError(f"reward: only {len(pairs)} {objective} pairs; need at least 4")
        out[objective] = pairs
        log.info("%s pairs: %d (%s)", objective, len(pairs), _kinds(pairs))
    return out


def policy_negatives(cfg: RunConfig, base: str, tokenizer: Any) -> tuple[Any, Any]:
    """(sampler, chooser) for reward.negatives=sample, from the policy at `base` (the SFT
    model): its greedy answers to harmful requests and its likeliest wrong choice; both
    deterministic, so `python -m medalign.rewards.scale` rebuilds the same pairs."""
    from medalign.eval.choice import likeliest_wrong
    from medalign.eval.generate import generate_texts
    from medalign.models.load import at_path, load_causal_lm

    policy = load_causal_lm(at_path(cfg.model, base), cfg.quant, base)

    def sampler(prompts: list[str]) -> list[str]:
        return generate_texts(policy, tokenizer, prompts, cfg.eval, "sampling negatives")

    def chooser(task: Any, records: list) -> list[str | None] | None:
        return likeliest_wrong(policy, tokenizer, task, records, cfg.eval.batch_size)

    return sampler, chooser


def split(pairs: list[P.Pair], fraction: float) -> tuple[list[P.Pair], list[P.Pair]]:
    held = max(1, round(len(pairs) * fraction)) if fraction > 0 else 0
    return pairs[held:], pairs[:held]


def reversed_pairs(pairs: list[P.Pair]) -> list[P.Pair]:
    """Each pair with chosen and rejected swapped (reward.reversed: a reward model that
    prefers what it should not, whose RL run the hacking flag must catch)."""
    return [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs]


def trl_rows(pairs: list[P.Pair]) -> list[dict[str, Any]]:
    return [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs]


def _on_policy_negatives(sampler: Any, records: list) -> list[str | None]:
    """The SFT model's own answers to harmful requests; refusals are no negatives."""
    from medalign.eval.refusal import is_refusal

    samples = sampler([r.question for r in records])
    return [None if is_refusal(s) or not s.strip() else s for s in samples]


def _kinds(pairs: list[P.Pair]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p["kind"]] = counts.get(p["kind"], 0) + 1
    return counts
