"""Reward-model stage: preference pairs -> TRL RewardTrainer -> pairwise accuracy.

    python -m medalign stage=reward init_from=runs/<date>/<time>_medqa reward.objective=both

A sequence-classification head (one score) on the SFT model (its adapter merged in), with
the configured LoRA adapter (`lora.*`, every variant, built by models/lora.py as for SFT
and RL) unless reward.lora=false or lora=none (then every weight trains).
reward.reversed=[safety] trains the safety model on its pairs reversed: a model built to
be hacked, for checking the hacking flag (rewards/hacking.py). objective=both trains two
models, `reward_helpfulness/` and `reward_safety/`, each saved
merged (plain `from_pretrained`) and scored on held-out pairs: accuracy (chosen scored
above rejected) and mean margin. Its score scale, fitted on those pairs, is saved with it
(`reward_<objective>/scale.json`, rewards/scale.py): RL standardizes by it before weighting.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from medalign.config import RunConfig, TrainerStageConfig
from medalign.models.init_from import sft_base
from medalign.outputs import RunDir
from medalign.stages.spec import StageInputs, StageSpec, register_stage
from medalign.tracking import Tracker

log = logging.getLogger(__name__)


def run_reward(cfg: RunConfig, inputs: StageInputs) -> dict[str, float]:
    out, tracker = inputs.record, inputs.tracker
    from medalign.models.load import load_tokenizer
    from medalign.rewards.build import build_pairs, policy_negatives, reversed_pairs, split
    from medalign.rewards.scale import SCALE_FILE, fit_and_write
    from medalign.stages.common import with_path

    point = inputs.start
    base = sft_base(cfg, out, point)
    tokenizer = load_tokenizer(with_path(cfg, base), base)
    sampler = chooser = None
    if cfg.reward.negatives == "sample":
        sampler, chooser = policy_negatives(cfg, base, tokenizer)
    pairs = build_pairs(cfg, sampler, chooser)
    metrics: dict[str, float] = {}
    models: dict[str, str] = {}
    for objective, objective_pairs in pairs.items():
        train, held = split(objective_pairs, cfg.reward.eval_fraction)
        reversed_ = objective in cfg.reward.reversed
        if reversed_:  # the canary: held-out pairs stay true
            train = reversed_pairs(train)
            log.warning(
                "reward_%s trains on its %d pairs reversed (reward.reversed): a model built "
                "to be hacked; its held-out accuracy is against the true pairs",
                objective,
                len(train),
            )
        model = _train(cfg, out, tracker, base, tokenizer, train, objective)
        target = out.path / f"reward_{objective}"
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        scale, chosen, rejected = fit_and_write(model, tokenizer, held, train, partial)
        os.replace(partial, target)
        models[objective] = str(target)
        wins = [float(c > r) for c, r in zip(chosen, rejected, strict=True)]
        margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
        metrics.update(
            {
                f"reward/{objective}_accuracy": _mean(wins),
                f"reward/{objective}_margin": _mean(margins),
                f"reward/{objective}_train_pairs": len(train),
                f"reward/{objective}_heldout_pairs": len(held),
                f"reward/{objective}_scale_mean": scale["mean"],
                f"reward/{objective}_scale_std": scale["std"],
                f"reward/{objective}_reversed": float(reversed_),  # 1: the canary
            }
        )
        for kind in sorted({p["kind"] for p in held}):  # one kind may be easy, another not
            mine = [w for w, p in zip(wins, held, strict=True) if p["kind"] == kind]
            metrics[f"reward/{objective}_accuracy_{kind}"] = _mean(mine)
            metrics[f"reward/{objective}_heldout_pairs_{kind}"] = len(mine)
    tracker.log(metrics)
    scales = {k: str(Path(v) / SCALE_FILE) for k, v in models.items()}
    out.update(base_model=base, reward_models=models, reward_scales=scales, metrics=metrics)
    return metrics


def _train(
    cfg: RunConfig,
    out: RunDir,
    tracker: Tracker,
    base: str,
    tokenizer: Any,
    train: list,
    objective: str,
) -> Any:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from medalign.models.lora import attach_loraplus, lora_config
    from medalign.rewards.build import trl_rows
    from medalign.stages.common import build_config, trainer_args

    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    peft = lora_config(cfg.lora, head="reward") if cfg.reward.lora else None
    args = build_config(
        RewardConfig,
        cfg,
        trainer_args(cfg, out, tracker, subdir=f"checkpoints_{objective}"),
        max_length=cfg.trainer.max_length,
    )
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(trl_rows(train)),
        processing_class=tokenizer,
        peft_config=peft,
    )
    if peft is not None:
        attach_loraplus(trainer, cfg.lora, cfg.trainer.learning_rate)  # lora.loraplus_lr_ratio
    trainer.train()
    trained = trainer.model
    return trained.merge_and_unload() if peft is not None else trained


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


SPEC = register_stage(
    StageSpec(
        kind="reward",
        schema=TrainerStageConfig,
        run=run_reward,
        curriculum="step",
        hands_on="reward_models",
        validation="warn",
        settings="reward",
    )
)
