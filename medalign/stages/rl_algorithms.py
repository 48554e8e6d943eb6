"""RL algorithms as registered builders: `rl.algorithm=<name>` picks one.

    @register("rl_algorithm", "grpo")
    def grpo(cfg, common, tracker, model, tokenizer, peft) -> (trainer, reward_logger | None)

Each builds its TRL config from the shared trainer arguments (`common`, from `trainer:`)
plus its own `rl.*` settings and `stage.trainer_kwargs`, and returns the trainer; online
algorithms also return the callback that re-logs rewards under medalign's names. A new
algorithm is one function here (or a dotted path: rl.algorithm=my_pkg.rl:build).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError
from medalign.registry import register
from medalign.rewards.rl_prompts import prompt_rows
from medalign.stages.common import build_config
from medalign.tracking import Tracker


@register("rl_algorithm", "grpo")
def grpo(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft) -> Any:
    """GRPO: group-relative advantages over rl.num_generations completions per prompt."""
    return _online(cfg, common, tracker, model, tokenizer, peft, "grpo")


@register("rl_algorithm", "rloo")
def rloo(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft) -> Any:
    """RLOO: REINFORCE with a leave-one-out baseline, same rewards as GRPO."""
    return _online(cfg, common, tracker, model, tokenizer, peft, "rloo")


def _online(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft, algo) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from medalign.rewards.functions import build_reward_functions
    from medalign.rewards.hacking import RewardTrace

    rl = cfg.rl
    trace = RewardTrace()  # each reward model's score beside its gold, per step
    fns, weights = build_reward_functions(
        cfg.reward.weights, cfg.reward.models, cfg.reward.length_target, trace
    )
    config_cls, trainer_cls = (
        (GRPOConfig, GRPOTrainer) if algo == "grpo" else (RLOOConfig, RLOOTrainer)
    )
    args = build_config(
        config_cls,
        cfg,
        common,
        beta=rl.beta,
        num_generations=rl.num_generations,
        max_completion_length=rl.max_completion_length,
        temperature=rl.temperature,
        reward_weights=weights,
        **(vllm_args(rl) if rl.use_vllm else {}),
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
    logger.trace = trace  # read by stages/rl.py: reward hacking, detected
    trainer.callback_handler.callbacks.insert(0, logger)  # before W&B's, which reads the logs
    if rl.merge_for_generation:
        from medalign.models.merged_generation import generate_merged

        generate_merged(trainer)  # HF generation with the adapter merged, base restored exactly
    return trainer, logger


def vllm_args(rl: Any) -> dict[str, Any]:
    """TRL's vLLM settings: colocate shares each GPU (vllm_gpu_memory_utilization of it;
    sleep mode frees it during the update), server talks to `trl vllm-serve`."""
    out: dict[str, Any] = {"use_vllm": True, "vllm_mode": rl.vllm_mode}
    if rl.vllm_mode == "colocate":
        out["vllm_gpu_memory_utilization"] = rl.vllm_gpu_memory_utilization
        out["vllm_enable_sleep_mode"] = rl.vllm_enable_sleep_mode
    return out


@register("rl_algorithm", "dpo")
def dpo(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft) -> Any:
    """DPO: offline, on the reward stage's preference pairs, or (rl.pairs=ranked) on the
    SFT model's own best-of-n against its worst-of-n under reward.weights."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from medalign.rewards.build import trl_rows

    pairs, extra = _preference_pairs(cfg, common, model, tokenizer)
    args = build_config(DPOConfig, cfg, common, beta=_beta(cfg), max_length=cfg.trainer.max_length)
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(trl_rows(pairs)),
        processing_class=tokenizer,
        peft_config=peft,
    )
    logger = _with_logger(trainer, preference_logger(tracker))
    logger.extra = extra  # the ranked pairs' counts, into the stage's metrics
    return trainer, logger


@register("rl_algorithm", "kto")
def kto(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft) -> Any:
    """KTO: single answers marked desirable or not (the pairs unpaired, or thumbs-up/down
    rows from rl.feedback_path); a reference model like DPO's."""
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    from medalign.rewards.feedback import load_feedback, unpaired_rows

    extra: dict[str, float] = {}
    if cfg.rl.feedback_path:
        rows = load_feedback(cfg.rl.feedback_path)
    else:
        pairs, extra = _preference_pairs(cfg, common, model, tokenizer)
        rows = unpaired_rows(pairs, cfg.seed)
    args = build_config(KTOConfig, cfg, common, beta=_beta(cfg), max_length=cfg.trainer.max_length)
    trainer = KTOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft,
    )
    logger = _with_logger(trainer, preference_logger(tracker))
    logger.extra = extra
    return trainer, logger


@register("rl_algorithm", "orpo")
def orpo(cfg: RunConfig, common: dict, tracker: Tracker, model, tokenizer, peft) -> Any:
    """ORPO (TRL experimental): SFT on the chosen answer plus an odds-ratio penalty on the
    rejected one; no reference model (rl.beta is ORPO's lambda)."""
    import warnings

    from datasets import Dataset

    with warnings.catch_warnings():  # rl=orpo asked for it: not news on every run
        warnings.filterwarnings("ignore", message="You are importing from 'trl.experimental'")
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from medalign.rewards.build import trl_rows

    args = build_config(ORPOConfig, cfg, common, beta=_beta(cfg), max_length=cfg.trainer.max_length)
    trainer = ORPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(trl_rows(_pairs(cfg))),
        processing_class=tokenizer,
        peft_config=peft,
    )
    return trainer, _with_logger(trainer, preference_logger(tracker, "orpo"))


PREFERENCE = ("dpo", "kto", "orpo")  # the offline algorithms: preference data, no rewards


def check_rl_algorithm(cfg: RunConfig) -> None:
    """rl.algorithm names a registered RL algorithm (a plugin's too); PPO, gone from this
    TRL, gets its own line."""
    from medalign.registry import names

    if cfg.rl.algorithm in names("rl_algorithm"):
        return
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


def check_preference_data(cfg: RunConfig) -> None:
    """rl=dpo|kto|orpo needs preference data: checked at start-up, one line."""
    rl = cfg.rl
    if rl.pairs == "ranked" and rl.algorithm not in ("dpo", "kto"):
        raise MedalignError(
            f"rl.pairs=ranked: ranked pairs train rl=dpo or rl=kto; rl={rl.algorithm} "
            + (
                "trains on the reward stage's pairs (rl.pairs=reward_stage)"
                if rl.algorithm in PREFERENCE
                else "samples and scores its own answers online: drop rl.pairs"
            )
        )
    if rl.feedback_path and rl.algorithm != "kto":
        raise MedalignError(
            f"rl.feedback_path: thumbs-up/down rows train KTO only (rl=kto); "
            f"rl.algorithm={rl.algorithm} needs chosen/rejected pairs (reward.pairs_path)"
        )
    if rl.algorithm not in PREFERENCE:
        return
    if rl.algorithm == "kto" and cfg.trainer.per_device_train_batch_size < 2:
        raise MedalignError(
            "rl=kto: trainer.per_device_train_batch_size=1; KTO estimates its KL term from "
            "the other answers in a batch, so it needs >= 2"
        )
    if rl.feedback_path:
        if not Path(rl.feedback_path).expanduser().is_file():
            raise MedalignError(f"rl.feedback_path: file not found: {rl.feedback_path}")
        return
    if rl.pairs == "ranked":
        return  # the policy's own samples, ranked by reward.weights (rewards/checks.py)
    r = cfg.reward
    if r.pairs_path or r.pairs_hub_id or _pair_datasets(cfg):
        return
    extra = " or thumbs-up/down rows (rl.feedback_path)" if rl.algorithm == "kto" else ""
    raise MedalignError(
        f"rl={rl.algorithm} needs preference data and has none: no dataset of "
        f"reward.datasets / reward.safety_datasets "
        f"({', '.join([*r.datasets, *r.safety_datasets]) or 'empty'}) builds preference "
        f"pairs, and reward.pairs_path and reward.pairs_hub_id are unset. Give pairs "
        f"(reward.pairs_path=pairs.jsonl with prompt/chosen/rejected){extra}, or a dataset "
        f"that builds them (reward.datasets=[medmcqa,pubmedqa])"
    )


def _pair_datasets(cfg: RunConfig) -> list[str]:
    """The reward datasets whose Task builds preference pairs (overrides Task.pairs)."""
    from medalign.tasks.base import Task, task_class

    names = dict.fromkeys([*cfg.reward.datasets, *cfg.reward.safety_datasets])
    out = []
    for name in names:
        dcfg = cfg.datasets.get(name) or (cfg.dataset if name == cfg.dataset.name else None)
        if dcfg is not None and task_class(dcfg.format).pairs is not Task.pairs:
            out.append(name)
    return out


def _preference_pairs(
    cfg: RunConfig, common: dict, model: Any, tokenizer: Any
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The pairs DPO/KTO train on, and their counts for the metrics: the reward stage's
    (rl.pairs=reward_stage), or the policy's own samples ranked by the rewards (ranked)."""
    if cfg.rl.pairs != "ranked":
        return _pairs(cfg), {}
    from medalign.rewards.ranked_pairs import ranked_pairs

    out = Path(common["output_dir"]).parent
    return ranked_pairs(cfg, model, tokenizer, out)


def _pairs(cfg: RunConfig) -> list[dict[str, Any]]:
    from medalign.rewards.build import build_pairs

    return [p for objective in build_pairs(cfg).values() for p in objective]


def _beta(cfg: RunConfig) -> float:
    return cfg.rl.beta if cfg.rl.beta > 0 else 0.1


def _with_logger(trainer: Any, logger: Any) -> Any:
    trainer.callback_handler.callbacks.insert(0, logger)  # before W&B's, which reads the logs
    return logger


# TRL's preference metrics -> medalign's names, the same for DPO, KTO and ORPO wherever
# they mean the same thing (KTO has no accuracy: its answers are unpaired; ORPO has no
# reference model, so its "reward" is beta x the answer's log-probability).
PREFERENCE_METRICS = {
    "rewards/chosen": "rl/chosen_reward",
    "rewards/rejected": "rl/rejected_reward",
    "rewards/margins": "rl/reward_margin",
    "rewards/accuracies": "rl/reward_accuracy",
    "logps/chosen": "rl/chosen_logp",
    "logps/rejected": "rl/rejected_logp",
    "kl": "rl/kl",
    "nll_loss": "rl/nll_loss",
    "log_odds_ratio": "rl/log_odds_ratio",
}


# ORPO's log-probabilities are per-token means (TRL: average_log_prob=True); DPO's and
# KTO's are sums over the answer: never under one name.
PER_TOKEN_LOGPS = {
    "logps/chosen": "rl/chosen_logp_per_token",
    "logps/rejected": "rl/rejected_logp_per_token",
}


def preference_logger(tracker: Tracker, algorithm: str = "dpo") -> Any:
    """A callback that re-logs TRL's preference metrics under medalign's names
    (PREFERENCE_METRICS) to W&B and keeps each logged row (`history`) for the manifest."""
    from transformers import TrainerCallback

    names = PREFERENCE_METRICS | (PER_TOKEN_LOGPS if algorithm == "orpo" else {})

    class PreferenceLogger(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict[str, float]] = []

        def on_log(self, args, state, control, logs=None, **kwargs) -> None:
            logs = logs or {}
            row = {new: float(logs[old]) for old, new in names.items() if old in logs}
            if row:
                self.history.append(row)
                tracker.log(row)

    return PreferenceLogger()


def reward_logger(tracker: Tracker, names: list[str]) -> Any:
    """A callback that re-logs TRL's per-function rewards under medalign's names
    (reward/<name>_mean, reward/total_mean, rl/kl) to W&B and keeps them for the manifest."""
    from transformers import TrainerCallback

    class RewardLogger(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict[str, float]] = []

        def on_log(self, args, state, control, logs=None, **kwargs) -> None:
            logs = logs or {}
            means = {n: logs.get(f"rewards/{n}/mean") for n in names}
            row = {  # NaN: a scoped reward that no prompt of the step is for
                f"reward/{n}_mean": v for n, v in means.items() if v is not None and v == v
            }
            if "reward" in logs:
                row["reward/total_mean"] = logs["reward"]
            if "kl" in logs:
                row["rl/kl"] = logs["kl"]
            if row:
                self.history.append(row)
                tracker.log(row)

    return RewardLogger()
