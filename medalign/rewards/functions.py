"""Reward functions for RL, registered by name and combined with `reward.weights`.

Each has TRL's reward-function signature, `f(completions, **columns) -> list[float]`,
so GRPO and RLOO call them directly; the dataset columns they read are `task` (the
prompt's Task name) and `reference` (JSON: what that Task's `correctness` needs).
Your own reward: `reward.weights={my_pkg.rewards:brevity: 0.5}` names any importable
function with this signature.

correctness  the Task's verdict: 1 when the parsed final answer equals the gold
             letter/decision; SQuAD F1 of the parsed span for RadQA
format       1 when the completion has a parseable final-answer line
length       0 up to `reward.length_target` words, falling linearly to -1 at twice that
<model>      the score of a trained reward model (reward.models.<name>;
             models/inference.py `reward_model_fn`)
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from medalign.errors import MedalignError
from medalign.eval.parsing import final_answer_text
from medalign.registry import get, names, register

RewardFn = Callable[..., list[float]]


def _text(completion: Any) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


@register("reward_fn", "correctness")
def correctness(
    completions: list[Any], task: list[str], reference: list[str], **_: Any
) -> list[float]:
    """Each prompt's Task (looked up by name in the registry) scores its completion
    against the row's JSON reference."""
    return [
        get("task", t).correctness(_text(c), json.loads(ref))
        for c, t, ref in zip(completions, task, reference, strict=True)
    ]


@register("reward_fn", "format")
def format_reward(completions: list[Any], **_: Any) -> list[float]:
    return [float(bool(final_answer_text(_text(c)))) for c in completions]


def length_reward(target_words: int) -> RewardFn:
    def length(completions: list[Any], **_: Any) -> list[float]:
        out = []
        for completion in completions:
            extra = len(_text(completion).split()) - target_words
            out.append(-min(1.0, max(0.0, extra / target_words)))
        return out

    return length


def build_reward_functions(
    weights: dict[str, float], models: dict[str, str | None], length_target: int
) -> tuple[list[RewardFn], list[float]]:
    """The reward functions named in `weights` (with non-zero weight), in order."""
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
            from medalign.models.inference import reward_model_fn

            fn = reward_model_fn(name, str(models[name]))
        else:
            fn = named_reward(name)
        fns.append(fn)
        used.append(float(weight))
    if not fns:
        raise MedalignError("reward.weights: every weight is 0; nothing to optimize")
    return fns, used


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
