"""RL alignment stage: GRPO (default), RLOO or DPO from the SFT model.

    python -m medalign stage=rl rl.init_from=runs/.../adapter            (GRPO)
    python -m medalign stage=rl rl=dpo rl.init_from=runs/.../adapter

The policy is the SFT model (its adapter merged in) with a new LoRA adapter, so the
KL term (`rl.beta`) pulls towards the SFT model, not the raw base. GRPO and RLOO optimize
`reward.weights` over the reward functions (correctness, format, length, reward models),
each logged as reward/<name>_mean with the weighted total as reward/total_mean; DPO
trains offline on the reward stage's preference pairs. PPO is refused at start-up: TRL
1.13 removed `trl.experimental.ppo` (see medalign/config.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from medalign.config import RunConfig
from medalign.data.formatting import answer_text, render_prompt
from medalign.data.loading import dataset_config, load_records
from medalign.outputs import RunDir
from medalign.registry import register
from medalign.tracking import Tracker

log = logging.getLogger(__name__)


@register("stage", "rl")
def run_rl(cfg: RunConfig, run: RunDir, tracker: Tracker) -> dict[str, float]:
    if cfg.rl.engine == "verl":  # a ready-to-run verl job, not a TRL run
        from medalign.rl_engines.verl import write_verl_job

        return write_verl_job(cfg, run.path)
    from medalign.models.load import load_causal_lm, load_tokenizer
    from medalign.models.lora import lora_config
    from medalign.stages.common import sft_base, with_path
    from medalign.stages.sft import save_atomically

    base = sft_base(cfg, run, cfg.rl.init_from)
    model_cfg = with_path(cfg, base)
    tokenizer = load_tokenizer(model_cfg, base)
    model = load_causal_lm(model_cfg, cfg.quant, base)
    peft = lora_config(cfg.lora)
    from medalign.stages.common import trainer_args

    rl = cfg.rl
    common = trainer_args(
        cfg,
        run,
        tracker,
        max_steps=rl.max_steps,
        learning_rate=rl.learning_rate,
        batch_size=rl.per_device_train_batch_size,
        logging_steps=rl.logging_steps,
    )
    logger = None
    if rl.algorithm == "dpo":
        trainer = _dpo(cfg, common, model, tokenizer, peft)
    else:
        trainer, logger = _online(cfg, common, tracker, model, tokenizer, peft)
    started = time.perf_counter()
    result = trainer.train()
    elapsed = time.perf_counter() - started
    adapter = save_atomically(trainer.model, tokenizer, run.path / "adapter")
    metrics = {
        "rl/steps": int(result.global_step),
        "rl/runtime_s": round(elapsed, 2),
        "rl/loss": float(result.training_loss),
        **_reward_summary(logger),
    }
    from medalign.stages.eval import evaluate_after_training

    metrics.update(evaluate_after_training(trainer.model, tokenizer, cfg, run, tracker))
    run.update(base_model=base, adapter=str(adapter), metrics=metrics)
    tracker.summary(metrics)
    return metrics


def prompt_rows(cfg: RunConfig) -> list[dict[str, Any]]:
    """RL prompts with the columns the reward functions read."""
    rows = []
    for name in cfg.rl.datasets:
        dcfg = dataset_config(name, cfg.dataset)
        records = load_records(dcfg, cfg.data_root).records[: cfg.rl.limit or None]
        for record in records:
            choices = (
                list(record.options)
                if record.options
                else (["yes", "no", "maybe"] if isinstance(record.answer, str) else [])
            )
            rows.append(
                {
                    "prompt": [{"role": "user", "content": render_prompt(record, dcfg)}],
                    "gold": answer_text(record, dcfg) if choices else "",
                    "choices": choices,
                    "golds": list(record.answer) if isinstance(record.answer, list) else [],
                    "no_answer": dcfg.no_answer,
                }
            )
    return rows


def _online(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from medalign.rewards.functions import build_reward_functions

    rl = cfg.rl
    fns, weights = build_reward_functions(
        cfg.reward.weights, cfg.reward.models, cfg.reward.length_target
    )
    config_cls, trainer_cls = (
        (GRPOConfig, GRPOTrainer) if rl.algorithm == "grpo" else (RLOOConfig, RLOOTrainer)
    )
    args = config_cls(
        **common,
        beta=rl.beta,
        num_generations=rl.num_generations,
        max_completion_length=rl.max_completion_length,
        temperature=rl.temperature,
        reward_weights=weights,
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


def _dpo(cfg: RunConfig, common: dict, model, tokenizer, peft) -> Any:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from medalign.rewards.build import build_pairs, trl_rows

    rl = cfg.rl
    pairs = [p for objective in build_pairs(cfg).values() for p in objective]
    args = DPOConfig(
        **common,
        beta=rl.beta if rl.beta > 0 else 0.1,
        max_length=cfg.reward.max_length,
    )
    return DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(trl_rows(pairs)),
        processing_class=tokenizer,
        peft_config=peft,
    )


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


def _reward_summary(logger: Any) -> dict[str, float]:
    """The last logged value of each reward metric (mean over the final logging window)."""
    last: dict[str, float] = {}
    for row in logger.history if logger is not None else []:
        last.update(row)
    return last
