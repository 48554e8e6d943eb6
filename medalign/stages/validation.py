"""Validation during SFT: `eval/loss` every `trainer.eval_steps`, early stopping and the
best adapter, through transformers' own mechanisms (`eval_strategy`, `EarlyStoppingCallback`,
`load_best_model_at_end`), not a loop of ours.

    python -m medalign stage=medqa trainer.eval_steps=20
    python -m medalign stage=medqa trainer.eval_steps=20 trainer.early_stopping_patience=3

Off by default (`trainer.eval_steps: null`). Which rows are held out: data/validation.py.
The best adapter needs a checkpoint at each evaluation that might be the best: with
`trainer.save_steps=0` the trainer saves only on a new best (`save_strategy="best"`);
with periodic checkpoints `save_steps` must be a multiple of `eval_steps`. The stage's
manifest records `validation`: rows, source, every (step, loss), the best loss and its
step, and whether training stopped early.
"""

from __future__ import annotations

import logging
from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError

log = logging.getLogger(__name__)


def keep_best(cfg: RunConfig) -> bool:
    """trainer.load_best_model_at_end, null meaning: on when early stopping is."""
    t = cfg.trainer
    if t.load_best_model_at_end is None:
        return t.early_stopping_patience is not None
    return t.load_best_model_at_end


def check_validation(cfg: RunConfig) -> None:
    """Combinations refused at start-up, one line each (ranges: checks._RANGES)."""
    t = cfg.trainer
    if t.eval_steps is None:
        for key, value in (
            ("early_stopping_patience", t.early_stopping_patience),
            ("load_best_model_at_end", t.load_best_model_at_end or None),
        ):
            if value is not None:
                raise MedalignError(
                    f"config trainer.{key}={value}: needs validation; set trainer.eval_steps "
                    "(evaluate the held-out rows every N steps)"
                )
        return
    from medalign.stages.spec import stage_spec

    validation = stage_spec(cfg.stage.kind).validation  # "sft": held-out rows, checked
    if validation != "sft":
        if validation != "warn":  # eval, export, ...: nothing trains
            return
        log.warning(
            "trainer.eval_steps=%s: validation applies to SFT stages; this %s stage ignores "
            "it (the reward stage evaluates on reward.eval_fraction)",
            t.eval_steps,
            cfg.stage.kind,
        )
        return
    if t.max_steps != -1 and t.eval_steps > t.max_steps:
        raise MedalignError(
            f"config trainer.eval_steps={t.eval_steps}: more than trainer.max_steps="
            f"{t.max_steps}, so no validation would run; use eval_steps <= max_steps"
        )
    if keep_best(cfg) and t.save_steps > 0 and t.save_steps % t.eval_steps:
        raise MedalignError(
            f"config trainer.save_steps={t.save_steps}: keeping the best adapter "
            f"(load_best_model_at_end) needs checkpoints at evaluations: make save_steps a "
            f"multiple of trainer.eval_steps={t.eval_steps}, or 0 (save only a new best)"
        )


def validation_args(cfg: RunConfig) -> dict[str, Any]:
    """The TrainingArguments that turn validation on (empty when it is off)."""
    t = cfg.trainer
    if t.eval_steps is None:
        return {}
    args: dict[str, Any] = {
        "eval_strategy": "steps",
        "eval_steps": t.eval_steps,
        "per_device_eval_batch_size": t.per_device_train_batch_size,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
    }
    if keep_best(cfg):
        args["load_best_model_at_end"] = True
        if t.save_steps == 0:  # a checkpoint only when the validation loss is a new best
            args.update(save_strategy="best", save_steps=t.eval_steps)
    return args


def validation_callbacks(cfg: RunConfig) -> list[Any]:
    """transformers' EarlyStoppingCallback when trainer.early_stopping_patience is set."""
    patience = cfg.trainer.early_stopping_patience
    if cfg.trainer.eval_steps is None or patience is None:
        return []
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(early_stopping_patience=patience)]


def validation_summary(trainer: Any, cfg: RunConfig) -> dict[str, Any]:
    """Every logged (step, eval_loss), the best and its step, whether training stopped
    before trainer.max_steps; {} when validation is off."""
    if cfg.trainer.eval_steps is None:
        return {}
    losses = [
        [int(e["step"]), float(e["eval_loss"])]
        for e in trainer.state.log_history
        if "eval_loss" in e
    ]
    out: dict[str, Any] = {"eval_steps": cfg.trainer.eval_steps, "losses": losses}
    if losses:
        step, loss = min(losses, key=lambda sl: (sl[1], sl[0]))
        out.update(best_loss=loss, best_step=step)
    planned = trainer.state.max_steps
    out["stopped_early"] = bool(trainer.state.global_step < planned)
    out["kept"] = "best" if keep_best(cfg) else "last"
    if out["stopped_early"]:
        log.warning(
            "early stopping: validation loss did not improve for %d evaluations; stopped at "
            "step %d of %d, keeping the %s adapter (best %.4f at step %s)",
            cfg.trainer.early_stopping_patience or 0,
            trainer.state.global_step,
            planned,
            out["kept"],
            out.get("best_loss", float("nan")),
            out.get("best_step"),
        )
    return out
