"""Start-up checks that need the registry (tasks, RL algorithms): run after the config is
typed and before anything is written or loaded, so a wrong name fails in a second.

Kept out of config.py so the config layer imports nothing above it.
"""

from __future__ import annotations

from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError, did_you_mean


def check_components(cfg: RunConfig) -> Any:
    """Names that must resolve in the registry (tasks, RL algorithms), and the numeric
    ranges, checked at start-up; last, the stage kind's own check (its StageSpec's),
    whose result is returned for medalign.run to hand to the stage."""
    from medalign.models.lora import check_lora
    from medalign.models.switches import check_switches
    from medalign.stages.spec import stage_spec

    spec = stage_spec(cfg.stage.kind)
    check_ranges(cfg)
    from medalign.stages.validation import check_validation

    check_validation(cfg)  # trainer.eval_steps / early_stopping_patience / load_best
    check_lora(cfg.lora, cfg.quant)
    check_switches(cfg, planning=spec.plans_only)
    _check_rewards(cfg)
    from medalign.tasks.base import check_config

    check_config(cfg.dataset, "dataset")
    _check_dataset_names(cfg)
    from medalign.eval.cot_checks import check_cot

    # eval.mode=cot: samples, temperature, lm-eval tasks generative where the run evaluates
    check_cot(cfg, evaluates=spec.will_evaluate(cfg.eval.after_train))
    _check_cot_datasets(cfg)
    _check_lm_eval(cfg)
    for name, dcfg in cfg.datasets.items():
        check_config(dcfg, f"datasets.{name}")
    _check_eval_sets(cfg, evaluates=spec.will_evaluate(cfg.eval.after_train))
    from medalign.rewards.checks import check_reward_setup
    from medalign.stages.rl_algorithms import PREFERENCE
    from medalign.stages.spec import curriculum_spec

    steps = (
        [(name, curriculum_spec(name)) for name in cfg.curriculum.order]
        if spec.pipeline is not None
        else [(cfg.stage.kind, spec)]
    )
    # GRPO/RLOO, and DPO/KTO on the policy's samples ranked by the rewards, weigh them
    online = cfg.rl.algorithm not in PREFERENCE or cfg.rl.pairs == "ranked"
    check_reward_setup(cfg, steps, online=online)  # models, scales, scopes
    return spec.check(cfg) if spec.check is not None else None


# (path, test, what a valid value is): every numeric key whose range is known.
_RANGES = [
    ("lora.r", lambda v: v >= 1, "an integer >= 1"),
    ("lora.alpha", lambda v: v > 0, "> 0"),
    ("lora.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("trainer.max_steps", lambda v: v >= 1 or v == -1, ">= 1, or -1 to train for num_train_epochs"),
    ("trainer.num_train_epochs", lambda v: v > 0, "> 0"),
    ("trainer.per_device_train_batch_size", lambda v: v >= 1, ">= 1"),
    ("trainer.gradient_accumulation_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.learning_rate", lambda v: v > 0, "> 0"),
    ("trainer.warmup_steps", lambda v: v >= 0, ">= 0 (< 1: a fraction of the steps)"),
    ("trainer.weight_decay", lambda v: v >= 0, ">= 0"),
    ("trainer.max_grad_norm", lambda v: v > 0, "> 0"),
    ("trainer.max_length", lambda v: v >= 8, ">= 8 tokens"),
    ("trainer.logging_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.save_steps", lambda v: v >= 0, ">= 0 (0: no checkpoints)"),
    ("trainer.save_total_limit", lambda v: v >= 1, ">= 1"),
    ("trainer.eval_steps", lambda v: v is None or v >= 1, ">= 1, or null for no validation"),
    ("trainer.validation_fraction", lambda v: 0 < v < 1, "in (0, 1)"),
    ("trainer.early_stopping_patience", lambda v: v is None or v >= 1, ">= 1, or null"),
    ("dataset.limit", lambda v: v is None or v >= 1, ">= 1, or null for every row"),
    ("dataset.ngram", lambda v: v >= 1, ">= 1"),
    ("eval.limit", lambda v: v is None or v >= 1, ">= 1, or null for every row"),
    ("eval.batch_size", lambda v: v >= 1, ">= 1"),
    ("eval.max_new_tokens", lambda v: v >= 1, ">= 1"),
    ("eval.bootstrap", lambda v: v >= 0, ">= 0 (0: no intervals)"),
    ("compare.alpha", lambda v: 0 < v < 1, "between 0 and 1 (e.g. 0.05)"),
    ("compare.resamples", lambda v: v >= 1000, ">= 1000 (intervals and p need the draws)"),
    ("reward.eval_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("reward.limit", lambda v: v is None or v >= 4, ">= 4 pairs, or null"),
    ("rl.limit", lambda v: v is None or v >= 1, ">= 1, or null"),
    ("rl.num_generations", lambda v: v >= 2, ">= 2 (a group needs two completions)"),
    ("rl.max_completion_length", lambda v: v >= 1, ">= 1"),
    ("rl.beta", lambda v: v >= 0, ">= 0"),
    ("rl.temperature", lambda v: v > 0, "> 0"),
    ("rl.vllm_gpu_memory_utilization", lambda v: 0 < v < 1, "in (0, 1): vLLM's share of a GPU"),
]


def check_ranges(cfg: RunConfig) -> None:
    """Out-of-range numbers fail at start-up, naming the key, the value and the range,
    instead of a traceback after the model loaded (or, worse, a silent wrong run)."""
    for path, ok, valid in _RANGES:
        group, key = path.split(".")
        if group == "lora" and not cfg.lora.enabled:
            continue
        value = getattr(getattr(cfg, group), key)
        if not ok(value):
            raise MedalignError(f"config {path}={value!r}: must be {valid}")
    replays = {"curriculum.replay": cfg.curriculum.replay} | {
        f"curriculum.stages.{name}.replay": step.replay
        for name, step in cfg.curriculum.stages.items()
        if step.replay is not None
    }
    for path, value in replays.items():
        if not 0 <= value <= 1:
            raise MedalignError(
                f"config {path}={value!r}: must be in [0, 1], the share of each earlier "
                "stage's rows replayed (0: off; to repeat a dataset, dataset.mix weights "
                "above 1 do that)"
            )
    mixes = {"dataset.mix": dict(cfg.dataset.mix or {})} | {
        f"curriculum.stages.{name}.mix": dict(step.mix or {})
        for name, step in cfg.curriculum.stages.items()
    }
    for where, mix in mixes.items():
        for name, weight in mix.items():
            if not weight > 0:
                raise MedalignError(f"config {where}.{name}={weight!r}: a weight must be > 0")
    from medalign.stages.spec import stage_spec

    if cfg.quant.mode != "none" and not cfg.lora.enabled and stage_spec(cfg.stage.kind).fine_tunes:
        raise MedalignError(
            f"quant={cfg.quant.mode} with lora=none: quantized weights cannot be fine-tuned in "
            "full; train a LoRA adapter on them (lora=default), or use quant=none"
        )


def _check_rewards(cfg: RunConfig) -> None:
    """Every reward RL will optimize, checked here, before any model loads (not when the
    RL trainer is built, after the earlier stages of a curriculum): a short name must be
    registered (a plugin's too), a dotted path must import with TRL's signature, and a
    reward model needs its path, or a reward stage before RL in the curriculum."""

    from medalign.stages.spec import stage_spec

    spec = stage_spec(cfg.stage.kind)
    kinds = _curriculum_kinds(cfg) if spec.pipeline is not None else [spec]
    readers = [k for k, s in enumerate(kinds) if s.reads_reward_models]
    if not readers:
        return
    from medalign.registry import names
    from medalign.rewards.functions import named_reward

    in_curriculum = spec.pipeline is not None
    trained_first = in_curriculum and any(
        s.hands_on == "reward_models" for s in kinds[: readers[0]]
    )
    known = [*names("reward_fn"), "length", *cfg.reward.models]
    for name, weight in cfg.reward.weights.items():
        if not weight:
            continue
        if "." in name or ":" in name:
            named_reward(name)
        elif name in cfg.reward.models:
            if not cfg.reward.models[name] and not trained_first:
                where = "a reward stage before rl in curriculum.order, or " * in_curriculum
                raise MedalignError(
                    f"config reward.weights.{name}={weight} needs a trained reward model: "
                    f"{where}reward.models.{name}=<its dir>, or weight 0"
                )
        elif name not in known:
            raise MedalignError(
                f"config reward.weights: unknown reward {name!r}.{did_you_mean(name, known)} "
                f"Known: {', '.join(sorted(known))}, or a dotted path to a function"
            )


def _curriculum_kinds(cfg: RunConfig) -> list[Any]:
    """The StageSpec of each name in curriculum.order (medalign.curriculum's reading)."""
    from medalign.stages.spec import curriculum_spec

    return [curriculum_spec(name) for name in cfg.curriculum.order]


def _check_dataset_names(cfg: RunConfig) -> None:
    """Every dataset a key names is in the catalogue: checked before anything trains, with
    the closest name suggested (an unknown eval set used to fail after training)."""

    from medalign.compose import dataset_names, misnamed

    known = set(cfg.datasets) | {cfg.dataset.name} | set(dataset_names())
    for key, dcfg in cfg.datasets.items():
        if dcfg.name != key:
            raise MedalignError(misnamed(f"config datasets.{key}", dcfg.name, key))
    from medalign.stages.spec import stage_spec

    in_curriculum = stage_spec(cfg.stage.kind).pipeline is not None
    order = cfg.curriculum.order
    kinds = _curriculum_kinds(cfg) if in_curriculum else []
    stages = [n for n, s in zip(order, kinds, strict=False) if s.curriculum == "dataset"]
    lists = {
        **({"curriculum.order": stages} if in_curriculum else {}),
        "eval.datasets": cfg.eval.datasets,
        "dataset.mix": list(cfg.dataset.mix or {}),
        "dataset.decontaminate_against": cfg.dataset.decontaminate_against,
        "rl.datasets": cfg.rl.datasets,
        "reward.datasets": cfg.reward.datasets,
        "reward.safety_datasets": cfg.reward.safety_datasets,
    }
    lists["eval.also_cot"] = cfg.eval.also_cot or []
    for key, names in lists.items():
        for name in names:
            if name not in known:
                hint = did_you_mean(name, known)
                raise MedalignError(
                    f"config {key}: unknown dataset {name!r}.{hint} The catalogue has: "
                    f"{', '.join(sorted(known))} (add one: a conf/dataset/<name>.yaml, "
                    "or one in a folder on $MEDALIGN_CONFIG_PATH; docs/extend/dataset.md)"
                )


def _check_eval_sets(cfg: RunConfig, evaluates: bool) -> None:
    """The sets the built-in evaluation will read, checked by their Tasks now (before
    training and before any model loads), not when evaluation first reads them after
    training (issue 36: PubMedQA's missing test ids failed a finished SFT run). A run
    that does not evaluate, or evaluates with lm-eval (eval.datasets unread), reads none."""
    if not evaluates or cfg.eval.backend != "builtin":
        return
    from medalign.data.loading import check_eval_sets

    check_eval_sets(cfg)


def _check_cot_datasets(cfg: RunConfig) -> None:
    """eval.also_cot names datasets whose Task can answer by chain-of-thought."""
    from medalign.eval.cot_checks import check_also_cot
    from medalign.tasks.base import task_class

    names = [n for n in cfg.eval.also_cot or [] if n in cfg.datasets]
    modes = {n: "cot" in task_class(cfg.datasets[n].format).eval_modes for n in names}
    check_also_cot(cfg.eval, modes)


def _check_lm_eval(cfg: RunConfig) -> None:
    """eval.backend=lm_eval: lm-eval installed and every task known, before any model loads
    (the TaskManager built here is reused by the evaluation)."""
    from medalign.stages.spec import stage_spec

    if not stage_spec(cfg.stage.kind).will_evaluate(cfg.eval.after_train):
        return
    ecfg = cfg.eval
    if ecfg.backend == "builtin":
        if ecfg.lm_eval.tasks:
            raise MedalignError(
                f"config eval.lm_eval.tasks={list(ecfg.lm_eval.tasks)}: the built-in backend "
                "would ignore them; add eval.backend=lm_eval"
            )
        return
    builtin_only = {"eval.splits": ecfg.splits, "eval.limits": ecfg.limits}
    builtin_only |= {"eval.judge_model": ecfg.judge_model}
    builtin_only["eval.mode"] = None if ecfg.mode in ("auto", "cot") else ecfg.mode
    for key, value in builtin_only.items():
        if value:
            raise MedalignError(
                f"config {key}={value}: read by the built-in backend only, so "
                "eval.backend=lm_eval would ignore it (eval.limit applies to lm-eval tasks)"
            )
    from medalign.eval.harness import check_config

    check_config(ecfg)
