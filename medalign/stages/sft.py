"""Supervised fine-tuning stage: records -> chat prompt/completion -> TRL SFTTrainer + LoRA.

    python -m medalign stage=pubmedqa lora.r=16

Data is read and validated before the model loads, so bad rows fail in a second, not
after a 7B download. The adapter is written to `adapter.partial/` and renamed to
`adapter/` only when complete.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from medalign import preempt
from medalign.checkpoints import completed_adapter, latest_checkpoint
from medalign.config import RunConfig, SFTStageConfig
from medalign.errors import MedalignError
from medalign.models.init_from import StartingPoint, base_source
from medalign.outputs import RunDir
from medalign.stages.spec import StageInputs, StageSpec, register_stage
from medalign.tracking import Tracker

log = logging.getLogger(__name__)


def run_sft(cfg: RunConfig, inputs: StageInputs) -> dict[str, float]:
    """Train one SFT stage; return its metrics (also written to metrics.json)."""
    out, tracker = inputs.record, inputs.tracker
    from medalign.data.loading import load_training_data, training_configs
    from medalign.data.prepare import cached_sft, prepare_sft
    from medalign.models.load import load_causal_lm, load_tokenizer
    from medalign.stages.common import with_path

    stage: SFTStageConfig = cfg.stage
    point = inputs.start
    check_init_adapter(cfg, point)  # a LoRA mismatch fails before anything loads
    from medalign.data import load_cache
    from medalign.data.validation import hold_out

    load_key, summary = load_cache.recall_training(cfg)  # the same files read before?
    data = held = None
    if summary is None:
        data = load_training_data(cfg)  # bad rows fail here, before anything heavy loads
        held = hold_out(cfg, data)  # trainer.eval_steps: validation rows leave the set
    source = base_source(point, cfg.model)
    model_cfg = with_path(cfg, source) if point is not None and point.base else cfg.model
    tokenizer = load_tokenizer(model_cfg, source)
    args = _sft_args(cfg, out, tracker)
    prepared = None
    if summary is not None:  # both cached: training starts without reading a row
        configs = [config for config, _ in training_configs(cfg)]
        prepared = cached_sft(cfg, configs, summary["fingerprint"], tokenizer, args)
        if prepared is not None and not load_cache.agrees(summary, prepared):
            prepared = None  # the remembered load and the tokenized entry disagree
    if prepared is None:
        data = data or load_training_data(cfg)
        summary = data.summary()
        prepared = prepare_sft(cfg, data.parts, tokenizer, args, summary["fingerprint"])
        load_cache.remember_training(cfg, load_key, {**summary, **load_cache.points_to(prepared)})
    valid = _prepared_validation(cfg, held, tokenizer, args)
    remembered = {"load_cache": {"key": load_key, "hit": data is None}}
    out.update(
        base_model=source,
        **({"init_from": point.record()} if point else {}),
        data={**load_cache.as_recorded(summary), **prepared.manifest(), **remembered},
        **({"validation": held.summary()} if held else {}),
    )

    saved = completed_adapter(out.path) if stage.resume_from == "latest" else None
    if saved is not None:  # killed after training, during its evaluation
        import dataclasses

        from medalign.stages.eval import evaluate_saved

        return evaluate_saved(
            dataclasses.replace(cfg, model=model_cfg), out, tracker, saved, source
        )
    model = load_causal_lm(model_cfg, cfg.quant, source)
    model, peft_config = _attach_adapter(model, cfg, point)
    trainer = _build_trainer(cfg, args, model, tokenizer, (prepared, valid), peft_config)
    from medalign.models.lora import attach_loraplus

    attach_loraplus(trainer, cfg.lora, cfg.trainer.learning_rate)  # lora.loraplus_lr_ratio
    checkpoint = _checkpoint_to_resume(stage.resume_from, out.path / "checkpoints")
    resumed_at = 0
    if checkpoint:
        log.info("resuming training from %s", checkpoint)
        out.update(resumed_from=checkpoint)
        resumed_at = _continue_counters(trainer, Path(checkpoint))
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    finally:  # a SIGTERM that stopped training (a checkpoint saved) stops the stage here
        preempt.raise_if_requested(trainer.state.global_step)
    elapsed = time.perf_counter() - started

    out_name = "adapter" if cfg.lora.enabled or (point and point.adapter) else "model"
    out_dir = save_atomically(trainer.model, tokenizer, out.path / out_name)
    tokens = _num_tokens(trainer)
    loss, covers = _whole_run_loss(trainer, result, resumed_at)
    metrics = {
        "train/loss": loss,
        "train/num_tokens": tokens,
        "train/tokens_per_s": round(tokens / elapsed, 1) if tokens else None,
        "train/packing": packing_mode(cfg),
        "train/steps": int(result.global_step),
        "train/runtime_s": round(elapsed, 3),
        "train/steps_per_s": round(result.global_step / elapsed, 3),
        "train/first_loss": _first_logged_loss(trainer),
    }
    if covers:  # resumed from a checkpoint saved between two logs (an earlier medalign)
        log.warning("train/loss and train/num_tokens cover steps %s of this run only", covers)
        metrics["train/covers_steps"] = covers
    from medalign.stages.validation import validation_summary

    if validation := validation_summary(trainer, cfg):  # eval/loss: best, its step
        out.update(validation={**(held.summary() if held else {}), **validation})
        metrics["eval/best_loss"] = validation.get("best_loss")
        metrics["eval/best_loss_step"] = validation.get("best_step")
    from medalign.stages.eval import evaluate_after_training

    out.update(adapter=str(out_dir), train_metrics=metrics)  # a resume needs only the eval
    metrics.update(evaluate_after_training(trainer.model, tokenizer, cfg, out, tracker))
    out.update(adapter=str(out_dir), metrics=metrics, world_size=trainer.args.world_size)
    tracker.summary(metrics)
    log.info("saved %s to %s; %s", out_name, out_dir, metrics)
    return metrics


def save_atomically(model: Any, tokenizer: Any, target: Path) -> Path:
    """`save_pretrained` into `<target>.partial`, then rename: no half-written adapter.
    A complete `target` already there moves aside and goes only once the new one is in."""
    import shutil

    partial, aside = (target.with_name(target.name + ext) for ext in (".partial", ".old"))
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
    os.replace(partial, target)
    shutil.rmtree(aside, ignore_errors=True)
    return target


def check_init_adapter(cfg: RunConfig, point: StartingPoint | None) -> None:
    """The adapter to continue must have the LoRA shape the config asks for."""
    if point is None or not point.adapter:
        return
    saved = json.loads(Path(point.adapter, "adapter_config.json").read_text())
    asked = {"r": cfg.lora.r, "lora_alpha": cfg.lora.alpha}
    names = {"r": "lora.r", "lora_alpha": "lora.alpha"}
    for key, value in asked.items():
        if cfg.lora.enabled and saved.get(key) != value:
            raise MedalignError(
                f"init_from={point.spec}: the adapter at {point.adapter} has "
                f"{key}={saved.get(key)}, but the config asks for {names[key]}={value}; make "
                "them agree, or use curriculum.handoff=merge to start a new adapter"
            )


def _attach_adapter(model: Any, cfg: RunConfig, point: StartingPoint | None) -> tuple[Any, Any]:
    """Continue the starting point's adapter, or return the LoraConfig for a new one."""
    from medalign.models.lora import lora_config

    if point is None or not point.adapter:
        return model, lora_config(cfg.lora)
    from peft import PeftModel

    return PeftModel.from_pretrained(model, point.adapter, is_trainable=True), None


def _sft_args(cfg: RunConfig, out: RunDir, tracker: Tracker) -> Any:
    """The run's trl.SFTConfig (built before the model loads: data preparation reads it)."""
    from trl import SFTConfig

    from medalign.data.prepare import num_proc
    from medalign.stages.common import build_config, trainer_args
    from medalign.stages.validation import validation_args

    common = trainer_args(cfg, out, tracker)
    packed = packing_mode(cfg)
    return build_config(
        SFTConfig,
        cfg,
        common,
        max_length=cfg.trainer.max_length,
        packing=packed,
        padding_free=packed,
        completion_only_loss=True,
        dataset_num_proc=num_proc(cfg),
        **({"neftune_noise_alpha": t} if (t := cfg.trainer.neftune_noise_alpha) else {}),
        **validation_args(cfg),  # trainer.eval_steps, load_best_model_at_end
    )


def _build_trainer(
    cfg: RunConfig, args: Any, model: Any, tokenizer: Any, data: tuple[Any, Any], peft_config: Any
) -> Any:
    """TRL's SFTTrainer on the prepared data (already tokenized: TRL skips its own pass)."""
    from trl import SFTTrainer

    from medalign.stages.validation import validation_callbacks

    prepared, valid = data
    if prepared.tokenized and (valid is None or valid.tokenized):
        args.dataset_kwargs = {**(args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=prepared.dataset,
        eval_dataset=valid.dataset if valid is not None else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[
            *validation_callbacks(cfg),  # trainer.early_stopping_patience
            preempt.callback(cfg.trainer.checkpoint_on_preempt),  # SIGTERM: save, stop
            log_first_step_and_saves(),  # after it: sees the save the signal asks for
        ],
    )


def _prepared_validation(cfg: RunConfig, held: Any, tokenizer: Any, args: Any) -> Any:
    """The held-out validation rows (trainer.eval_steps), tokenized like the training set."""
    if not held:
        return None
    from medalign.data.prepare import prepare_sft
    from medalign.data.records import LoadedData

    parts = [LoadedData(r, "validation", {}, c) for r, c in held.parts]
    return prepare_sft(cfg, parts, tokenizer, args)


def _checkpoint_to_resume(resume_from: str | None, folder: Path) -> str | None:
    """`latest`: the newest checkpoint of this run, if any; a path: that checkpoint."""
    if not resume_from:
        return None
    if resume_from != "latest":
        if not Path(resume_from, "trainer_state.json").is_file():
            raise MedalignError(f"stage.resume_from: no trainer checkpoint at {resume_from}")
        return resume_from
    return latest_checkpoint(folder)  # the newest *complete* one; says which were skipped


def packing_mode(cfg: RunConfig) -> bool:
    """stage.packing, or by device when null: padding-free packing pays off only with
    flash attention on a GPU; on a CPU it measured slower than padded batches."""
    if cfg.stage.packing is not None:
        return cfg.stage.packing
    import torch

    return torch.cuda.is_available() and "flash" in cfg.model.attn_implementation


def _continue_counters(trainer: Any, checkpoint: Path) -> int:
    """Carry TRL's running token count over a resume (it restarts at 0 in a new
    process); return the checkpoint's step."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    counts = [e["num_tokens"] for e in state.get("log_history", []) if "num_tokens" in e]
    if counts and hasattr(trainer, "_total_train_tokens"):
        trainer._total_train_tokens = int(counts[-1])
    return int(state.get("global_step", 0))


def log_first_step_and_saves() -> Any:
    """A callback that logs the loss (and TRL's token count) at step 1 and at every step
    that saves a checkpoint: the checkpoint then carries the figures of every step before
    it, so a resumed stage reports the whole run (not only the resumed steps), and a job
    shorter than `logging_steps` still has a first loss."""
    from transformers import TrainerCallback

    class LogFirstStepAndSaves(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 1 or control.should_save:
                control.should_log = True

    return LogFirstStepAndSaves()


def _whole_run_loss(trainer: Any, result: Any, resumed_at: int) -> tuple[float, str | None]:
    """Mean training loss over every step of the run, and None; or, when the checkpoint
    resumed from logged nothing at its own step (saved by an earlier medalign between two
    logs), the mean over the steps known and which steps those are. After a resume the
    trainer's own figure covers only the resumed steps; the steps before come from the
    logged windows the checkpoint restored."""
    if not resumed_at:
        return float(result.training_loss), None
    total, previous = 0.0, 0
    for entry in trainer.state.log_history:
        if "loss" in entry and entry.get("step", 0) <= resumed_at:
            total += entry["loss"] * (entry["step"] - previous)
            previous = entry["step"]
    after = result.global_step - resumed_at
    loss = (total + float(result.training_loss) * after) / max(previous + after, 1)
    if previous == resumed_at:
        return loss, None
    known = f"1-{previous}, " if previous else ""
    return loss, f"{known}{resumed_at + 1}-{result.global_step}"


def _num_tokens(trainer: Any) -> int | None:
    """Non-padding tokens trained on: TRL's running count (carried over a resume by
    _continue_counters), else its last logged value."""
    running = getattr(trainer, "_total_train_tokens", None)
    if isinstance(running, int) and running > 0:
        return running
    counts = [entry["num_tokens"] for entry in trainer.state.log_history if "num_tokens" in entry]
    return int(counts[-1]) if counts else None


def _first_logged_loss(trainer: Any) -> float | None:
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return float(losses[0]) if losses else None


SPEC = register_stage(
    StageSpec(
        kind="sft",
        schema=SFTStageConfig,
        run=run_sft,
        curriculum="dataset",
        hands_on="adapter",
        evaluates="after_train",
        fine_tunes=True,
        validation="sft",
        resumable=True,
    )
)
