"""RL algorithms as registered builders: `rl.algorithm=<name>` picks one.

    @register("rl_algorithm", "grpo")
    def grpo(cfg, common, tracker, model, tokenizer, peft) -> (trainer, reward_logger | None)

Each builds its TRL config from the shared trainer arguments (`common`, from `trainer:`)
plus its own `rl.*` settings and `stage.trainer_kwargs`, and returns the trainer; online
algorithms also return the callback that re-logs rewards under medalign's names. A new
algorithm is one function here (or a dotted path: rl.algorithm=my_pkg.rl:build).
"""

from __future__ import annotations

from typing import Any

from medalign.config import RunConfig
from medalign.registry import register
from medalign.rewards.rl_prompts import prompt_rows
from medalign.stages.common import build_config
from medalign.tracking import Tracker


@register("rl_algorithm", "grpo")
def grpo(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft) -> Any:
    """GRPO: group-relative advantages over rl.num_generations completions per prompt."""
    return _online(cfg, common, tracker, model, tokenizer, peft, "grpo")


@register("rl_algorithm", "rloo")
def rloo(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft) -> Any:
    """RLOO: REINFORCE with a leave-one-out baseline, same rewards as GRPO."""
    return _online(cfg, common, tracker, model, tokenizer, peft, "rloo")


def _online(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft, algo) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from medalign.rewards.functions import build_reward_functions

    rl = cfg.rl
    fns, weights = build_reward_functions(
        cfg.reward.weights, cfg.reward.models, cfg.reward.length_target
    )
    config_cls, trainer_cls = (
        (GRPOConfig, GRPOTrainer) if algo == "grpo" else (RLOOConfig, RLOOTrainer)
    )
    args = build_config(
        config_cls,
        cfg,
        common,
        beta=rl.beta,
        num_generations=rl.num_generations,
        max_completion_length=rl.max_completion_length,
        temperature=rl.temperature,
        reward_weights=weights,
        **({"use_vllm": True, "vllm_mode": rl.vllm_mode} if rl.use_vllm else {}),
    )
    trainer = trainer_cls(
        model=model,
        reward_funcs=fns,
        args=args,
        train_dataset=Dataset.from_list(prompt_rows(cfg)),
        processing_class=tokenizer,
        peft_config=peft,
    )
    logger = reward_logger(tracker, [f.__name__ for f in fns])
    trainer.callback_handler.callbacks.insert(0, logger)  # before W&B's, which reads the logs
    return trainer, logger


@register("rl_algorithm", "dpo")
def dpo(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft) -> Any:
    """DPO: offline, on the reward stage's preference pairs; no reward functions."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from medalign.rewards.build import build_pairs, trl_rows

    rl = cfg.rl
    pairs = [p for objective in build_pairs(cfg).values() for p in objective]
    args = build_config(
        DPOConfig,
        cfg,
        common,
        beta=rl.beta if rl.beta > 0 else 0.1,
        max_length=cfg.trainer.max_length,
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(trl_rows(pairs)),
        processing_class=tokenizer,
        peft_config=peft,
    )
    return trainer, None


def reward_logger(tracker: Tracker, names: list[str]) -> Any:
    """A callback that re-logs TRL's per-function rewards under medalign's names
    (reward/<name>_mean, reward/total_mean, rl/kl) to W&B and keeps them for the manifest."""
    from transformers import TrainerCallback

    class RewardLogger(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict[str, float]] = []

        def on_log(self, args, state, control, logs=None, **kwargs) -> None:
            logs = logs or {}
            row = {
                f"reward/{n}_mean": logs[f"rewards/{n}/mean"]
                for n in names
                if f"rewards/{n}/mean" in logs
            }
            if "reward" in logs:
                row["reward/total_mean"] = logs["reward"]
            if "kl" in logs:
                row["rl/kl"] = logs["kl"]
            if row:
                self.history.append(row)
                tracker.log(row)

    return RewardLogger()
