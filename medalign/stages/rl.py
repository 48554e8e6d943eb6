"""RL alignment stage: GRPO (default), RLOO, or DPO / KTO / ORPO from the SFT model.

    python -m medalign stage=rl init_from=runs/<date>/<time>_medqa            (GRPO)
    python -m medalign stage=rl rl=dpo init_from=runs/<date>/<time>_medqa
    python -m medalign stage=rl rl=kto init_from=runs/<date>/<time>_medqa     (or rl=orpo)

The policy is the SFT model (its adapter merged in) with a new LoRA adapter, so the
KL term (`rl.beta`) pulls towards the SFT model, not the raw base. GRPO and RLOO optimize
`reward.weights` over the reward functions (correctness, format, length, reward models),
each logged as reward/<name>_mean with the weighted total as reward/total_mean, and
each reward model's score beside its gold outcome per fifth of the steps, flagged as
`rl/reward_hacking` when the score rises while the gold falls (rewards/hacking.py); DPO,
KTO and ORPO train offline on the reward stage's preference pairs (KTO also on
thumbs-up/down rows), their metrics under the same rl/* names. Each algorithm is a registered
builder (stages/rl_algorithms.py). PPO is refused at start-up: TRL 1.13 removed
`trl.experimental.ppo` (see medalign/config.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from medalign.config import RunConfig, TrainerStageConfig
from medalign.models.init_from import sft_base
from medalign.registry import get
from medalign.stages.spec import StageInputs, StageSpec, register_stage

log = logging.getLogger(__name__)


def run_rl(cfg: RunConfig, inputs: StageInputs) -> dict[str, float]:
    out, tracker = inputs.record, inputs.tracker
    if cfg.rl.engine == "verl":  # a ready-to-run verl job, not a TRL run
        from medalign.rl_engines.verl import write_verl_job

        return write_verl_job(cfg, out.path, inputs.start)
    from medalign.models.load import load_causal_lm, load_tokenizer
    from medalign.models.lora import attach_loraplus, lora_config
    from medalign.rewards.hacking import reward_vs_gold
    from medalign.stages.common import with_path
    from medalign.stages.sft import save_atomically

    point = inputs.start
    base = sft_base(cfg, out, point)
    model_cfg = with_path(cfg, base)
    tokenizer = load_tokenizer(model_cfg, base)
    model = load_causal_lm(model_cfg, cfg.quant, base)
    peft = lora_config(cfg.lora)
    from medalign.stages.common import trainer_args

    build = get("rl_algorithm", cfg.rl.algorithm)
    trainer, logger = build(cfg, trainer_args(cfg, out, tracker), tracker, model, tokenizer, peft)
    if peft is not None:
        attach_loraplus(trainer, cfg.lora, cfg.trainer.learning_rate)  # lora.loraplus_lr_ratio
    started = time.perf_counter()
    result = trainer.train()
    elapsed = time.perf_counter() - started
    adapter = save_atomically(trainer.model, tokenizer, out.path / "adapter")
    trace = getattr(logger, "trace", None)  # rewards/hacking.py: every score beside its gold
    if trace is not None:
        trace.save(out.path / "reward_trace.jsonl")
    metrics = {
        "rl/steps": int(result.global_step),
        "rl/runtime_s": round(elapsed, 2),
        "rl/loss": float(result.training_loss),
        **_loss_ends(trainer.state.log_history),  # rl/first_loss, rl/last_loss
        **_reward_summary(logger),
        **reward_vs_gold(getattr(trace, "rows", [])),
        **getattr(logger, "extra", {}),  # rl.pairs=ranked: how many prompts gave a pair
    }
    from medalign.stages.eval import evaluate_after_training

    metrics.update(evaluate_after_training(trainer.model, tokenizer, cfg, out, tracker))
    out.update(base_model=base, adapter=str(adapter), metrics=metrics)
    tracker.summary(metrics)
    return metrics


def _loss_ends(history: list[dict[str, Any]]) -> dict[str, float]:
    """The first and the last logged training loss: did the objective go down?"""
    losses = [float(e["loss"]) for e in history if "loss" in e]
    return {"rl/first_loss": losses[0], "rl/last_loss": losses[-1]} if losses else {}


def _reward_summary(logger: Any) -> dict[str, float]:
    """The last logged value of each reward metric, and its mean over the first and the
    last fifth of the logged RL steps (`reward/<name>_first_fifth`, `_last_fifth`) with
    Welch's two-sided p that they are equal (`_fifths_p`; the steps draw different prompts,
    so the test is unpaired): did the policy learn what it is rewarded for?"""
    from medalign.eval.metrics import welch_p

    history = list(logger.history) if logger is not None else []
    last: dict[str, float] = {}
    for row in history:
        last.update(row)
    if history:
        k = max(1, len(history) // 5)
        last["rl/logged_steps"] = len(history)
        for key in [k for k in last if k.startswith("reward/")]:
            name = key.removesuffix("_mean")
            fifths = [[r[key] for r in rows if key in r] for rows in (history[:k], history[-k:])]
            for part, values in zip(("first_fifth", "last_fifth"), fifths, strict=True):
                if values:
                    last |= _fifth_mean(f"{name}_{part}", values)
            if key.endswith("_mean") and min(map(len, fifths)) >= 2 and k < len(history) / 2:
                last[f"{name}_fifths_p"] = welch_p(*fifths)
    return last


def _fifth_mean(key: str, values: list[float]) -> dict[str, float]:
    """A fifth's mean with its n (logged steps) and 95% t interval (`_low`, `_high`; none
    under 2 steps), so the results table can show each mean with its n and interval."""
    from medalign.eval.metrics import t_interval

    out = {key: sum(values) / len(values), f"{key}_n": len(values)}
    bounds = t_interval(values)
    if bounds is not None:
        out |= {f"{key}_low": bounds[0], f"{key}_high": bounds[1]}
    return out


def check_rl(cfg: RunConfig) -> None:
    """stage=rl at start-up: verl's own limits for a verl job; otherwise a registered
    algorithm, its preference data (dpo, kto, orpo), and a colocated vLLM that fits."""
    if cfg.rl.engine == "verl":
        from medalign.rl_engines.verl import check_algorithm, check_lora_settings

        check_algorithm(cfg.rl.algorithm)  # verl runs ppo/grpo/rloo, not dpo
        check_lora_settings(cfg.lora)  # verl's LoRA: rank, alpha, targets; no variants
        return
    from medalign.plan.colocate import check_colocate
    from medalign.stages.rl_algorithms import check_preference_data, check_rl_algorithm

    check_rl_algorithm(cfg)
    check_preference_data(cfg)  # rl=dpo|kto|orpo without preference data: one line
    check_colocate(cfg)  # rl.vllm_mode=colocate: training + vLLM's share fit plan.gpu


SPEC = register_stage(
    StageSpec(
        kind="rl",
        schema=TrainerStageConfig,
        run=run_rl,
        check=check_rl,
        curriculum="step",
        reads_reward_models=True,
        generates=True,
        evaluates="after_train",
        validation="warn",
        settings="rl",
    )
)
