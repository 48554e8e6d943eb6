"""Continued pretraining: the causal LM loss on raw text, packed to trainer.max_length.

    python -m medalign stage=pretrain pretrain.path=corpus/            (.txt files)
    python -m medalign stage=pretrain pretrain.path=notes.jsonl pretrain.text_field=body
    python -m medalign experiment=curriculum 'curriculum.order=[pretrain,pubmedqa,medmcqa,medqa]'

The step MMed-Llama 3, Meditron and PMC-LLaMA are built on: the model first reads the
domain's text, then is taught its question formats. Documents (paragraphs of a .txt file,
rows of a JSONL) are concatenated and cut into max_length blocks (TRL's `wrapped`
packing), every token in the loss; `pretrain.packing=false` gives each document a row of
its own instead (short drills that must be seen whole: the world model's copy phase).
LoRA by default (`lora=none` trains every weight);
the adapter is handed to the next stage of a curriculum exactly like an SFT stage's.
LLaMA-Factory's `stage: pt` and axolotl's `pretraining_dataset` are the same idea.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from medalign import preempt
from medalign.config import RunConfig, TrainerStageConfig
from medalign.errors import MedalignError
from medalign.stages.spec import StageInputs, StageSpec, register_stage

log = logging.getLogger(__name__)


def reshuffled_passes(texts: list[str], repeat: int, seed: int) -> list[str]:
    """`texts` `repeat` times, the first pass in the corpus's order, each later one in a
    new seeded order: packed together, each document has new neighbours in each pass."""
    import random

    if repeat < 1:
        raise MedalignError(f"pretrain.repeat={repeat}: must be at least 1")
    rng = random.Random(seed)
    out = list(texts)
    for _ in range(repeat - 1):
        out += rng.sample(texts, len(texts))
    return out


def check_unpacked_lengths(texts: list[str], tokenizer: Any, max_length: int, source: str) -> None:
    """With `pretrain.packing=false` every document is one row: refuse one that
    trainer.max_length would cut, naming it, rather than train on its first part."""
    lengths = [len(ids) + 1 for ids in tokenizer(texts)["input_ids"]]  # and each one's EOS
    for k, (text, n) in enumerate(zip(texts, lengths, strict=True)):
        if n > max_length:
            opening = text[:40] + ("..." if len(text) > 40 else "")
            raise MedalignError(
                f"{source}, document {k + 1} ({opening!r}): {n} tokens, longer than "
                f"trainer.max_length={max_length}, and pretrain.packing=false keeps each "
                "document whole in one row; raise trainer.max_length, split the document, "
                "or set pretrain.packing=true"
            )


def run_pretrain(cfg: RunConfig, inputs: StageInputs) -> dict[str, Any]:
    out, tracker = inputs.record, inputs.tracker
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from medalign.data.text_corpus import read_corpus
    from medalign.models.init_from import base_source
    from medalign.models.load import load_causal_lm, load_tokenizer
    from medalign.stages.common import build_config, trainer_args, with_path
    from medalign.stages.eval import evaluate_after_training
    from medalign.stages.sft import (
        _attach_adapter,
        check_init_adapter,
        log_first_step_and_saves,
        save_atomically,
    )

    texts, source = read_corpus(cfg.pretrain)  # bad input fails before the model loads
    point = inputs.start
    check_init_adapter(cfg, point)
    base = base_source(point, cfg.model)
    model_cfg = with_path(cfg, base) if point is not None and point.base else cfg.model
    tokenizer = load_tokenizer(model_cfg, base)
    eos = tokenizer.eos_token or ""
    packing = cfg.pretrain.packing
    if not packing:
        check_unpacked_lengths(texts, tokenizer, cfg.trainer.max_length, source)
    texts = reshuffled_passes(texts, cfg.pretrain.repeat, cfg.seed)
    dataset = Dataset.from_dict({"text": [t + eos for t in texts]})  # documents end with EOS
    characters = sum(len(t) for t in texts)
    out.update(
        base_model=base,
        **({"init_from": point.record()} if point else {}),
        data={"source": source, "documents": len(texts), "characters": characters},
    )
    args = build_config(
        SFTConfig,
        cfg,
        trainer_args(cfg, out, tracker),
        max_length=cfg.trainer.max_length,
        packing=packing,
        # packed: concatenate and cut, no padding, no document lost; else one a row, padded
        **({"packing_strategy": "wrapped"} if packing else {}),
        dataset_text_field="text",
        completion_only_loss=False,
    )
    model, peft_config = _attach_adapter(load_causal_lm(model_cfg, cfg.quant, base), cfg, point)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[
            preempt.callback(cfg.trainer.checkpoint_on_preempt),
            log_first_step_and_saves(),  # a first loss even in a job shorter than a log window
        ],
    )
    started = time.perf_counter()
    try:
        result = trainer.train()
    finally:
        preempt.raise_if_requested(trainer.state.global_step)
    elapsed = time.perf_counter() - started
    name = "adapter" if cfg.lora.enabled or (point and point.adapter) else "model"
    out_dir = save_atomically(trainer.model, tokenizer, out.path / name)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    metrics: dict[str, Any] = {
        "train/loss": float(result.training_loss),
        "train/first_loss": losses[0] if losses else None,
        "train/last_loss": losses[-1] if losses else None,
        "train/steps": int(result.global_step),
        "train/runtime_s": round(elapsed, 3),
        "pretrain/documents": len(texts),
        "pretrain/blocks": len(trainer.train_dataset),
    }
    out.update(adapter=str(out_dir), train_metrics=metrics)
    metrics.update(evaluate_after_training(trainer.model, tokenizer, cfg, out, tracker))
    out.update(adapter=str(out_dir), metrics=metrics)
    tracker.summary(metrics)
    log.info("saved %s to %s; %s", name, out_dir, metrics)
    return metrics


SPEC = register_stage(
    StageSpec(
        kind="pretrain",
        schema=TrainerStageConfig,
        run=run_pretrain,
        curriculum="step",
        hands_on="adapter",
    )
)
