"""Reward functions for RL, registered by name and combined with `reward.weights`.

Each has TRL's reward-function signature, `f(completions, **columns) -> list[float]`,
so GRPO and RLOO call them directly; the dataset columns they read are `task` (the
prompt's Task name) and `reference` (JSON: what that Task's `correctness` needs).
A scoped reward (SCOPED) scores only the prompts whose Task declares it (`Task.rl_rewards`:
correctness and format on questions with a gold answer, safety on harmful requests,
helpfulness on both) and is None elsewhere, which TRL leaves out of the weighted sum.
Your own reward: `reward.weights={my_pkg.rewards:brevity: 0.5}` names any importable
function with this signature.

correctness  the Task's verdict: 1 when the parsed final answer equals the gold
             letter/decision; SQuAD F1 of the parsed span for RadQA
format       1 when the completion has a parseable final-answer line
length       0 up to `reward.length_target` words, falling linearly to -1 at twice that
<model>      the score of a trained reward model (reward.models.<name>;
             models/inference.py `reward_model_fn`), standardized by the scale fitted
             on its own held-out pairs (rewards/scale.py) before `reward.weights`
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from medalign.errors import MedalignError
from medalign.eval.parsing import final_answer_text
from medalign.registry import get, names, register

RewardFn = Callable[..., list[float | None]]
# Rewards that apply only to the prompts whose Task lists them in `rl_rewards`; any other
# (length, a reward model of another name, your own function) scores every prompt.
SCOPED = frozenset({"correctness", "format", "helpfulness", "safety"})


def completion_text(completion: Any) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


def applies(reward: str, tasks: list[str] | None, n: int) -> list[bool]:
    """Per row: does `reward` score this row's prompt (its Task's `rl_rewards`)? Rows
    without a `task` column (a plain dataset) take every reward."""
    if tasks is None or reward not in SCOPED:
        return [True] * n
    return [reward in get("task", t).rl_rewards for t in tasks]


@register("reward_fn", "correctness")
def correctness(
    completions: list[Any], task: list[str], reference: list[str], **_: Any
) -> list[float | None]:
    """Each prompt's Task (looked up by name in the registry) scores its completion
    against the row's JSON reference; None on a prompt with no gold answer."""
    return [
        get("task", t).correctness(completion_text(c), json.loads(ref)) if ok else None
        for c, t, ref, ok in zip(
            completions, task, reference, applies("correctness", task, len(task)), strict=True
        )
    ]


@register("reward_fn", "format")
def format_reward(
    completions: list[Any], task: list[str] | None = None, **_: Any
) -> list[float | None]:
    """1 when the completion has a parseable final-answer line; None where none is due."""
    return [
        float(bool(final_answer_text(completion_text(c)))) if ok else None
        for c, ok in zip(completions, applies("format", task, len(completions)), strict=True)
    ]


def length_reward(target_words: int) -> RewardFn:
    def length(completions: list[Any], **_: Any) -> list[float]:
        out = []
        for completion in completions:
            extra = len(completion_text(completion).split()) - target_words
            out.append(-min(1.0, max(0.0, extra / target_words)))
        return out

    return length


def build_reward_functions(
    weights: dict[str, float],
    models: dict[str, str | None],
    length_target: int,
    trace: Any = None,
) -> tuple[list[RewardFn], list[float]]:
    """The reward functions named in `weights` (with non-zero weight), in order. A reward
    model's scores go to `trace` (rewards/hacking.py RewardTrace) beside their gold."""
    known = set(names("reward_fn")) | {"length"} | set(models)
    fns, used = [], []
    for name, weight in weights.items():
        if name not in known and ":" not in name and "." not in name:
            raise MedalignError(
                f"reward.weights: unknown reward {name!r}; known: {', '.join(sorted(known))}"
            )
        if not weight:
            continue
        if name == "length":
            fn = length_reward(length_target)
        elif name in models:
            if not models[name]:
                raise MedalignError(
                    f"reward.weights.{name} needs a trained reward model: set reward.models.{name}"
                    " (the curriculum fills it from its reward stage), or give it weight 0"
                )
            fn = scaled_reward_model(name, str(models[name]), trace)
        else:
            fn = named_reward(name)
        fns.append(fn)
        used.append(float(weight))
    if not fns:
        raise MedalignError("reward.weights: every weight is 0; nothing to optimize")
    return fns, used


def scaled_reward_model(name: str, path: str, trace: Any = None) -> Any:
    """A trained reward model as an RL reward: its score standardized by its fitted scale,
    on the prompts whose Task declares `name` (None elsewhere); each scored completion is
    handed to `trace` beside its gold outcome (rewards/hacking.py)."""
    from medalign.models.inference import reward_model_dir, reward_model_fn
    from medalign.rewards.scale import missing_scale_message, read_scale, standardize

    path = str(reward_model_dir(name, path))
    scale = read_scale(path)
    if scale is None:  # checked at start-up (rewards/checks.py): a direct call ends here
        raise MedalignError(missing_scale_message(name, path))
    raw = reward_model_fn(name, path)

    def score(
        prompts: list[Any], completions: list[Any], task: list[str] | None = None, **columns: Any
    ) -> list[float | None]:
        rows = [i for i, ok in enumerate(applies(name, task, len(completions))) if ok]
        out: list[float | None] = [None] * len(completions)
        if rows:
            values = raw([prompts[i] for i in rows], [completions[i] for i in rows])
            for i, value in zip(rows, standardize(values, scale), strict=True):
                out[i] = value
        if trace is not None:
            state = columns.get("trainer_state")
            step = int(state.global_step) if state is not None else len(trace.rows)
            trace.add(name, step, completions, task, columns.get("reference"), out, prompts)
        return out

    score.__name__ = name
    return score


def named_reward(name: str) -> RewardFn:
    """A registered reward function, or `pkg.module:function`, checked for TRL's signature."""
    fn = get("reward_fn", name)
    if not callable(fn):
        raise MedalignError(f"reward.weights: {name!r} is not a function")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "completions" not in params or not takes_kwargs:
        raise MedalignError(
            f"reward.weights: {name!r} must have TRL's reward signature "
            "f(completions, **columns) -> list[float]"
        )
    if ":" not in name and "." not in name:
        fn.__name__ = name  # TRL logs rewards/<__name__>/mean
        return fn

    def wrapped(*args: Any, **kwargs: Any) -> list[float]:
        return fn(*args, **kwargs)

    wrapped.__name__ = name.replace(":", ".").rsplit(".", 1)[-1]
    return wrapped


def combine(values: dict[str, list[float]], weights: dict[str, float]) -> list[float]:
    """The weighted sum per completion: what GRPO/RLOO optimize and log as the total."""
    n = len(next(iter(values.values())))
    return [sum(weights[k] * values[k][i] for k in values) for i in range(n)]
