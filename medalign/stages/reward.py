"""Reward-model stage: preference pairs -> TRL RewardTrainer -> pairwise accuracy.

    python -m medalign stage=reward init_from=runs/<date>/<time>_medqa reward.objective=both

A sequence-classification head (one score) on the SFT model (its adapter merged in), with
the configured LoRA adapter (`lora.*`, every variant, built by models/lora.py as for SFT
and RL) unless reward.lora=false or lora=none (then every weight trains).
objective=both trains two models, `reward_helpfulness/` and `reward_safety/`, each saved
merged (plain `from_pretrained`) and scored on held-out pairs: accuracy (chosen scored
above rejected) and mean margin.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from medalign.config import RunConfig, TrainerStageConfig
from medalign.models.init_from import sft_base
from medalign.outputs import RunDir
from medalign.stages.spec import StageInputs, StageSpec, register_stage
from medalign.tracking import Tracker

log = logging.getLogger(__name__)


def run_reward(cfg: RunConfig, inputs: StageInputs) -> dict[str, float]:
    out, tracker = inputs.record, inputs.tracker
    from medalign.models.load import load_causal_lm, load_tokenizer
    from medalign.rewards.build import build_pairs, split
    from medalign.stages.common import with_path

    point = inputs.start
    base = sft_base(cfg, out, point)
    tokenizer = load_tokenizer(with_path(cfg, base), base)
    sampler = chooser = None
    if cfg.reward.negatives == "sample":
        from medalign.eval.choice import likeliest_wrong
        from medalign.eval.generate import generate_texts

        policy = load_causal_lm(with_path(cfg, base), cfg.quant, base)

        def sampler(prompts: list[str]) -> list[str]:
            return generate_texts(policy, tokenizer, prompts, cfg.eval, "sampling negatives")

        def chooser(task: Any, records: list) -> list[str | None] | None:
            return likeliest_wrong(policy, tokenizer, task, records, cfg.eval.batch_size)

    pairs = build_pairs(cfg, sampler, chooser)
    metrics: dict[str, float] = {}
    models: dict[str, str] = {}
    for objective, objective_pairs in pairs.items():
        train, held = split(objective_pairs, cfg.reward.eval_fraction)
        model = _train(cfg, out, tracker, base, tokenizer, train, objective)
        target = out.path / f"reward_{objective}"
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        os.replace(partial, target)
        models[objective] = str(target)
        wins, margins = pair_wins(model, tokenizer, held)
        metrics.update(
            {
                f"reward/{objective}_accuracy": _mean(wins),
                f"reward/{objective}_margin": _mean(margins),
                f"reward/{objective}_train_pairs": len(train),
                f"reward/{objective}_heldout_pairs": len(held),
            }
        )
        for kind in sorted({p["kind"] for p in held}):  # one kind may be easy, another not
            mine = [w for w, p in zip(wins, held, strict=True) if p["kind"] == kind]
            metrics[f"reward/{objective}_accuracy_{kind}"] = _mean(mine)
            metrics[f"reward/{objective}_heldout_pairs_{kind}"] = len(mine)
    tracker.log(metrics)
    out.update(base_model=base, reward_models=models, metrics=metrics)
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


def pair_wins(model: Any, tokenizer: Any, pairs: list) -> tuple[list[float], list[float]]:
    """Per pair: 1.0 where the chosen side scores above the rejected one, and the margin."""
    import torch

    if not pairs:
        return [], []
    model.eval()

    def scores(key: str) -> torch.Tensor:
        texts = [tokenizer.apply_chat_template(p["prompt"] + p[key], tokenize=False) for p in pairs]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            return model(**batch.to(model.device)).logits[:, 0].float()

    chosen, rejected = scores("chosen"), scores("rejected")
    return (chosen > rejected).float().tolist(), (chosen - rejected).tolist()


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
