"""A reward model's score on one scale, fitted on its own held-out pairs.

    python -m medalign.rewards.scale <reward run>      (a run from before: fit its scale)

Why: GRPO sums `weight x reward` over the reward functions before it normalizes the sum
within each group, so `reward.weights` mean what they say only if the rewards share a
scale. Correctness and format are 0/1; a reward model's raw score is a logit on whatever
scale its training drifted to (the world's safety model spanned -3.5..+3.3 within one
group and set the advantages alone: experiments/README.md, 2026-12-02). So each reward
model is standardized, z = (score - mean) / std, with the mean and standard deviation of
its scores on its own held-out pairs, chosen and rejected answers pooled. One unit is one
standard deviation of its scores over the answers it was trained to tell apart (a model
that separates them puts chosen answers near +1 and rejected near -1), and weight 0.5
means "one such unit is worth half a correct answer" for every reward model alike.

Chosen over a logistic P(beats a reference answer): on held-out pairs a model separates
perfectly (the world's harmful-request pairs: 1.000) a logistic slope has no finite
maximum-likelihood fit, while a mean and a standard deviation always exist; and the unit
is TRL's own (GRPO's `scale_rewards` divides by a standard deviation too).

The scale is `scale.json` inside the reward model's directory (it travels with the
model), named in the reward run's manifest (`reward_scales`); RL's reward-model rewards
apply it (rewards/functions.py `scaled_reward_model`). RL refuses at start-up a reward
model without one (rewards/checks.py), naming the command above.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from medalign.errors import MedalignError
from medalign.models.reward_scale import SCALE_FILE, read_scale, standardize
from medalign.outputs import write_json_atomic

__all__ = ["SCALE_FILE", "fit_scale", "read_scale", "standardize", "write_scale"]

log = logging.getLogger(__name__)

METHOD = "standardize"  # z = (score - mean) / std over held-out chosen + rejected scores
FIT_COMMAND = "python -m medalign.rewards.scale"


def pair_scores(model: Any, tokenizer: Any, pairs: list[dict]) -> tuple[list[float], list[float]]:
    """The reward model's raw score of each pair's chosen and rejected conversation."""
    import torch

    if not pairs:
        return [], []
    model.eval()

    def scores(key: str) -> list[float]:
        texts = [tokenizer.apply_chat_template(p["prompt"] + p[key], tokenize=False) for p in pairs]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            return model(**batch.to(model.device)).logits[:, 0].float().tolist()

    return scores("chosen"), scores("rejected")


def fit_scale(chosen: list[float], rejected: list[float], fitted_on: str) -> dict[str, Any]:
    """The standardization of a reward model's scores: the mean and (population) standard
    deviation of its chosen and rejected scores pooled, with the pairs' n and accuracy."""
    pooled = [*chosen, *rejected]
    if not pooled:
        raise MedalignError("reward scale: no pairs to fit it on")
    mean = sum(pooled) / len(pooled)
    std = math.sqrt(sum((s - mean) ** 2 for s in pooled) / len(pooled))
    wins = [float(c > r) for c, r in zip(chosen, rejected, strict=True)]
    return {
        "method": METHOD,
        "mean": mean,
        "std": std,
        "pairs": len(chosen),
        "fitted_on": fitted_on,  # heldout | train (reward.eval_fraction=0: no held-out pairs)
        "pair_accuracy": sum(wins) / len(wins),
    }


def write_scale(model_dir: Path, scale: dict[str, Any]) -> Path:
    path = Path(model_dir) / SCALE_FILE
    write_json_atomic(path, scale)
    return path


def fit_and_write(
    model: Any, tokenizer: Any, held: list[dict], train: list[dict], model_dir: Path
) -> tuple[dict[str, Any], list[float], list[float]]:
    """Fit the scale on the held-out pairs (the training pairs when none are held out)
    and write it into `model_dir`. Returns it with the held-out chosen and rejected
    scores (empty when none are held out), which the reward stage also reports."""
    fitted_on, pairs = ("heldout", held) if held else ("train", train)
    if not held:
        log.warning("reward.eval_fraction=0: the score scale is fitted on the training pairs")
    chosen, rejected = pair_scores(model, tokenizer, pairs)
    scale = fit_scale(chosen, rejected, fitted_on)
    write_scale(model_dir, scale)
    return (scale, chosen, rejected) if held else (scale, [], [])


def missing_scale_message(name: str, model_dir: str | Path) -> str:
    run = Path(model_dir).parent
    return (
        f"reward.models.{name}={model_dir}: this reward model has no fitted score scale "
        f"({SCALE_FILE}: its run {run} is from before reward scales), so reward.weights.{name} "
        f"would weigh raw logits; fit it from the run's held-out pairs: {FIT_COMMAND} {run}"
    )


# -- the command: fit the scale of a reward run from before ------------------------------
def fit_run(path: Path) -> dict[str, Path]:
    """Fit and write the scale of every reward model of a run that lacks one, on the run's
    own held-out pairs, rebuilt from the config it recorded (the same seed, split and
    deterministic negatives as the stage). Returns {objective: scale file}."""
    from omegaconf import OmegaConf
    from transformers import AutoModelForSequenceClassification

    from medalign.config import validate
    from medalign.models.inference import reward_stage_dir
    from medalign.models.load import at_path, load_tokenizer
    from medalign.outputs import RunDir
    from medalign.rewards.build import build_pairs, policy_negatives, split

    run_dir = reward_stage_dir(Path(path))
    stage = json.loads((run_dir / "manifest.json").read_text())["stages"][0]
    models = dict(stage.get("reward_models") or {})
    if not models:
        raise MedalignError(f"{run_dir}: its manifest names no reward models (not a reward run)")
    todo = {k: Path(v) for k, v in models.items() if read_scale(v) is None}
    written = {k: Path(v) / SCALE_FILE for k, v in models.items() if k not in todo}
    if not todo:
        return written
    cfg = validate(OmegaConf.load(run_dir / "config.yaml"))
    base = str(stage["base_model"])
    tokenizer = load_tokenizer(at_path(cfg.model, base), base)
    sampler = chooser = None
    if cfg.reward.negatives == "sample":
        sampler, chooser = policy_negatives(cfg, base, tokenizer)
    pairs = build_pairs(cfg, sampler, chooser)
    scales = dict(stage.get("reward_scales") or {})
    for objective, model_dir in todo.items():
        train, held = split(pairs[objective], cfg.reward.eval_fraction)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        fitted = fit_and_write(model, tokenizer, held, train, model_dir)[0]
        written[objective] = scales[objective] = model_dir / SCALE_FILE
        log.info(
            "%s: mean %.4f, std %.4f on %d pairs",
            objective,
            fitted["mean"],
            fitted["std"],
            fitted["pairs"],
        )
    record = RunDir(run_dir)  # the manifest names the scales, as a new run's does
    record.manifest = json.loads((run_dir / "manifest.json").read_text())
    record.update(reward_scales={k: str(v) for k, v in scales.items()})
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0].strip())
        return 0 if args and args[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        written = fit_run(Path(args[0]))
    except MedalignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for objective, path in sorted(written.items()):
        print(f"{objective}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
