"""Start-up checks of the rewards RL will weigh: one line each, before any model loads.

Called from medalign/checks.py. Each of these used to surface late or never: a reward
weight for a model the curriculum does not train failed when RL was built, after every
earlier stage had trained; a reward model from before score scales would weigh raw
logits; a scoped reward (Task.rl_rewards) on RL prompts none of which it scores would
add nothing, silently; a "safety" dataset with no harmful requests adds no safety pairs.
"""

from __future__ import annotations

from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError

OBJECTIVES = {"helpfulness": {"helpfulness"}, "safety": {"safety"}}
OBJECTIVES["both"] = OBJECTIVES["helpfulness"] | OBJECTIVES["safety"]


def check_reward_setup(cfg: RunConfig, steps: list[tuple[str, Any]], online: bool) -> None:
    """The reward models RL weighs (trained by the curriculum or found, with their fitted
    scale), the prompts each scoped reward scores (`online`: GRPO/RLOO), and
    reward.safety_datasets. `steps`: (name, StageSpec) of what this run runs, the
    curriculum's order for a curriculum (read by checks.py, above this layer)."""
    if any(spec.hands_on == "reward_models" for _, spec in steps):
        _check_reversed(cfg, steps)
    if any(spec.hands_on == "reward_models" or spec.reads_reward_models for _, spec in steps):
        _check_safety_datasets(cfg)
    if not any(spec.reads_reward_models for _, spec in steps):
        return
    trained = _trained_by_curriculum(cfg, steps)
    for name, weight in cfg.reward.weights.items():
        if not weight or name not in cfg.reward.models:
            continue
        path = cfg.reward.models[name]
        if path:
            _check_model(name, path)
        elif trained is not None and name not in trained:
            raise MedalignError(
                f"config reward.weights.{name}={weight}: the curriculum's reward stage trains "
                f"{' and '.join(sorted(trained)) or 'no'} reward model(s) (reward.objective), "
                f"not {name}; train it (reward.objective=both), give "
                f"reward.models.{name}=<its dir>, or set its weight to 0"
            )
    if online:
        _check_scopes(cfg)
    if cfg.rl.pairs == "ranked":
        _check_tokenizers(cfg)


def _check_reversed(cfg: RunConfig, steps: list[tuple[str, Any]]) -> None:
    """reward.reversed names only reward models this run's reward stage trains (a typo
    would otherwise train an honest model where a canary was asked for)."""
    trained = _trained_by_curriculum(cfg, steps)
    if trained is None:
        trained = OBJECTIVES.get(cfg.reward.objective, set())
    unknown = [name for name in cfg.reward.reversed if name not in trained]
    if unknown:
        raise MedalignError(
            f"config reward.reversed={list(cfg.reward.reversed)}: the reward stage trains "
            f"{' and '.join(sorted(trained)) or 'no'} reward model(s) "
            f"(reward.objective={cfg.reward.objective}), not {', '.join(unknown)}"
        )


def _check_tokenizers(cfg: RunConfig) -> None:
    """rl.pairs=ranked: each weighted reward model reads the policy's samples as text in
    its own tokenizer; one that splits them differently from the policy was trained on
    another model's view of the text, and its ranking is refused (a curriculum's reward
    stage starts from the same SFT model, so its tokenizer is the policy's)."""
    from medalign.models.inference import reward_model_dir
    from medalign.models.init_from import base_source, resolve_init_from

    paths = {n: p for n, p in cfg.reward.models.items() if p and cfg.reward.weights.get(n)}
    if not paths or not cfg.init_from:
        return
    policy = base_source(resolve_init_from(cfg.init_from), cfg.model)
    mine = _vocab(policy)
    for name, path in paths.items():
        model_dir = reward_model_dir(name, path)
        if mine is not None and _vocab(str(model_dir)) not in (None, mine):
            raise MedalignError(
                f"rl.pairs=ranked: reward.models.{name}={path} has another tokenizer than "
                f"the policy (init_from={cfg.init_from}: {policy}); rank with reward models "
                "trained from the same model (its reward stage's init_from), or set "
                f"reward.weights.{name}=0"
            )


def _vocab(path: str) -> dict[str, int] | None:
    """The tokenizer's vocabulary at a local model directory (None: none to read there)."""
    from pathlib import Path

    if not (Path(path) / "tokenizer_config.json").is_file():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path).get_vocab()


def _trained_by_curriculum(cfg: RunConfig, steps: list[tuple[str, Any]]) -> set[str] | None:
    """The reward models a curriculum's reward stage (before the stage that reads them)
    trains; None if none does (the existing check then asks for reward.models.<name>)."""
    trains = [i for i, (_, spec) in enumerate(steps) if spec.hands_on == "reward_models"]
    reads = [i for i, (_, spec) in enumerate(steps) if spec.reads_reward_models]
    if len(steps) < 2 or not trains or not reads or trains[0] > reads[0]:
        return None
    objective = cfg.reward.objective
    step = cfg.curriculum.stages.get(steps[trains[0]][0])
    for override in step.overrides if step is not None else []:
        key, _, value = override.lstrip("+").partition("=")
        if key in ("reward.objective", "reward") and value in OBJECTIVES:
            objective = value
    return OBJECTIVES.get(objective, set())


def _check_model(name: str, path: str) -> None:
    from medalign.models.inference import reward_model_dir
    from medalign.rewards.scale import missing_scale_message, read_scale

    model_dir = reward_model_dir(name, path)
    if read_scale(model_dir) is None:
        raise MedalignError(missing_scale_message(name, model_dir))


def _check_scopes(cfg: RunConfig) -> None:
    """A scoped reward with a weight scores only the prompts whose Task declares it:
    rl.datasets must hold one such dataset, or the weight buys nothing."""
    from medalign.rewards.functions import SCOPED

    declared = {name: _task(cfg, name).rl_rewards for name in cfg.rl.datasets}
    for reward, weight in cfg.reward.weights.items():
        if not weight or reward not in SCOPED:
            continue
        if any(reward in rewards for rewards in declared.values()):
            continue
        others = sorted(n for n in cfg.datasets if reward in _task(cfg, n).rl_rewards)
        raise MedalignError(
            f"config reward.weights.{reward}={weight}: {reward} scores only prompts whose "
            f"Task declares it (Task.rl_rewards), and no dataset of rl.datasets="
            f"[{','.join(cfg.rl.datasets)}] does; add one ({', '.join(others) or 'none known'}) "
            f"to rl.datasets, or set its weight to 0"
        )


def _check_safety_datasets(cfg: RunConfig) -> None:
    for name in cfg.reward.safety_datasets:
        if "safety" not in _task(cfg, name).rl_rewards:
            raise MedalignError(
                f"config reward.safety_datasets: {name!r} holds no harmful requests (its "
                f"Task does not declare the safety reward), so it would add no harmful-request "
                f"pairs; name a harmful-request dataset (medsafetybench), or move {name} to "
                f"reward.datasets"
            )


def _task(cfg: RunConfig, name: str) -> Any:
    """The Task class of catalogue dataset `name` (through the registry: rewards sit
    below tasks)."""
    from medalign.registry import get

    dcfg = cfg.datasets.get(name) or (cfg.dataset if cfg.dataset.name == name else None)
    if dcfg is None:  # an unknown name: medalign/checks.py names it, with a suggestion
        raise MedalignError(f"config: unknown dataset {name!r}")
    return get("task", dcfg.format)
