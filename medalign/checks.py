"""Start-up checks that need the registry (tasks, RL algorithms): run after the config is
typed and before anything is written or loaded, so a wrong name fails in a second.

Kept out of config.py so the config layer imports nothing above it.
"""

from __future__ import annotations

from medalign.config import RunConfig
from medalign.errors import MedalignError, did_you_mean


def check_components(cfg: RunConfig) -> None:
    """Names that must resolve in the registry (tasks, RL algorithms), and the numeric
    ranges, checked at start-up."""
    from medalign.models.lora import check_lora
    from medalign.models.switches import check_switches

    check_ranges(cfg)
    from medalign.stages.validation import check_validation

    check_validation(cfg)  # trainer.eval_steps / early_stopping_patience / load_best
    check_lora(cfg.lora, cfg.quant)
    check_switches(cfg)
    _check_rewards(cfg)
    from medalign.registry import names
    from medalign.tasks.base import check_config

    check_config(cfg.dataset, "dataset")
    _check_dataset_names(cfg)
    _check_lm_eval(cfg)
    for name, dcfg in cfg.datasets.items():
        check_config(dcfg, f"datasets.{name}")
    from medalign.rewards.checks import check_reward_setup
    from medalign.stages.rl_algorithms import PREFERENCE

    check_reward_setup(cfg, online=cfg.rl.algorithm not in PREFERENCE)  # models, scales, scopes
    if cfg.stage.kind == "compare":  # bad runs refused before a run directory exists
        from medalign.stages.compare import check_compare

        check_compare(cfg)
        return
    if cfg.stage.kind == "rl" and cfg.rl.engine == "verl":
        from medalign.rl_engines.verl import check_algorithm, check_lora_settings

        check_algorithm(cfg.rl.algorithm)  # verl runs ppo/grpo/rloo, not dpo
        check_lora_settings(cfg.lora)  # verl's LoRA: rank, alpha, targets; no variants
        return
    if cfg.stage.kind in ("rl", "curriculum") and cfg.rl.algorithm not in names("rl_algorithm"):
        if cfg.rl.algorithm == "ppo":
            raise MedalignError(
                "rl=ppo: PPOTrainer is not in this TRL (trl.experimental.ppo was removed in TRL "
                "1.13, and medalign keeps the newest TRL for every other trainer). Use rl=grpo "
                "or rl=rloo (critic-free policy gradients on the same rewards), or rl=dpo; for "
                "classic PPO, install trl==1.12.0 in a separate environment."
            )
        raise MedalignError(
            f"config rl.algorithm: unknown RL algorithm {cfg.rl.algorithm!r}; registered: "
            f"{', '.join(names('rl_algorithm'))}"
        )
    if cfg.stage.kind in ("rl", "curriculum"):
        from medalign.stages.rl_algorithms import check_preference_data

        check_preference_data(cfg)  # rl=dpo|kto|orpo without preference data: one line
    if cfg.stage.kind == "rl":
        from medalign.plan.colocate import check_colocate

        check_colocate(cfg)  # rl.vllm_mode=colocate: training + vLLM's share fit plan.gpu


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
    for name, weight in (cfg.dataset.mix or {}).items():
        if not weight > 0:
            raise MedalignError(f"config dataset.mix.{name}={weight!r}: a weight must be > 0")
    if (
        cfg.quant.mode != "none"
        and not cfg.lora.enabled
        and cfg.stage.kind in ("sft", "curriculum")
    ):
        raise MedalignError(
            f"quant={cfg.quant.mode} with lora=none: quantized weights cannot be fine-tuned in "
            "full; train a LoRA adapter on them (lora=default), or use quant=none"
        )


def _check_rewards(cfg: RunConfig) -> None:
    """Every reward RL will optimize, checked here, before any model loads (not when the
    RL trainer is built, after the earlier stages of a curriculum): a short name must be
    registered (a plugin's too), a dotted path must import with TRL's signature, and a
    reward model needs its path, or a reward stage before RL in the curriculum."""

    runs_rl = cfg.stage.kind == "rl" or (
        cfg.stage.kind == "curriculum" and "rl" in cfg.curriculum.order
    )
    if not runs_rl:
        return
    from medalign.registry import names
    from medalign.rewards.functions import named_reward

    order = list(cfg.curriculum.order)
    trained_first = cfg.stage.kind == "curriculum" and "reward" in order[: order.index("rl")]
    known = [*names("reward_fn"), "length", *cfg.reward.models]
    for name, weight in cfg.reward.weights.items():
        if not weight:
            continue
        if "." in name or ":" in name:
            named_reward(name)
        elif name in cfg.reward.models:
            if not cfg.reward.models[name] and not trained_first:
                where = "a reward stage before rl in curriculum.order, or " * (
                    cfg.stage.kind == "curriculum"
                )
                raise MedalignError(
                    f"config reward.weights.{name}={weight} needs a trained reward model: "
                    f"{where}reward.models.{name}=<its dir>, or weight 0"
                )
        elif name not in known:
            raise MedalignError(
                f"config reward.weights: unknown reward {name!r}.{did_you_mean(name, known)} "
                f"Known: {', '.join(sorted(known))}, or a dotted path to a function"
            )


def _check_dataset_names(cfg: RunConfig) -> None:
    """Every dataset a key names is in the catalogue: checked before anything trains, with
    the closest name suggested (an unknown eval set used to fail after training)."""

    from medalign.compose import dataset_names, misnamed

    known = set(cfg.datasets) | {cfg.dataset.name} | set(dataset_names())
    for key, dcfg in cfg.datasets.items():
        if dcfg.name != key:
            raise MedalignError(misnamed(f"config datasets.{key}", dcfg.name, key))
    stages = [n for n in cfg.curriculum.order if n not in ("pretrain", "reward", "rl")]
    lists = {
        **({"curriculum.order": stages} if cfg.stage.kind == "curriculum" else {}),
        "eval.datasets": cfg.eval.datasets,
        "dataset.mix": list(cfg.dataset.mix or {}),
        "dataset.decontaminate_against": cfg.dataset.decontaminate_against,
        "rl.datasets": cfg.rl.datasets,
        "reward.datasets": cfg.reward.datasets,
        "reward.safety_datasets": cfg.reward.safety_datasets,
    }
    for key, names in lists.items():
        for name in names:
            if name not in known:
                hint = did_you_mean(name, known)
                raise MedalignError(
                    f"config {key}: unknown dataset {name!r}.{hint} The catalogue has: "
                    f"{', '.join(sorted(known))} (add one: a conf/dataset/<name>.yaml, "
                    "or one in a folder on $MEDALIGN_CONFIG_PATH; docs/extend/dataset.md)"
                )


def _check_lm_eval(cfg: RunConfig) -> None:
    """eval.backend=lm_eval: lm-eval installed and every task known, before any model loads
    (the TaskManager built here is reused by the evaluation)."""
    evaluates = cfg.stage.kind in ("eval", "curriculum") or (
        cfg.eval.after_train and cfg.stage.kind in ("sft", "rl")
    )
    if not evaluates:
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
    builtin_only["eval.mode"] = None if ecfg.mode == "auto" else ecfg.mode
    for key, value in builtin_only.items():
        if value:
            raise MedalignError(
                f"config {key}={value}: read by the built-in backend only, so "
                "eval.backend=lm_eval would ignore it (eval.limit applies to lm-eval tasks)"
            )
    from medalign.eval.harness import check_config

    check_config(ecfg)
