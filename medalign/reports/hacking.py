"""results.md's reward-hacking section: each reward model's score beside the gold outcome
it stands for, in every fifth of the RL steps, and the flag.

A learned reward is a proxy; a rise in it is progress only if the outcome it stands for
rises too (rewards/hacking.py records both while RL trains). The table puts them side by
side, fifth by fifth, so a reader sees the score climb while the gold falls, and the last
column repeats the RL stage's own verdict (`rl/reward_hacking`): both changes from the
first to the last fifth significant (paired over the prompts scored in both fifths, or
Welch's test on the per-step means where too few pair), in opposite directions. Why a
section and not only metrics: in the world's GRPO run of 2026-12-02 the total reward
rose while correctness fell, and nothing in results.md said so.
"""

from __future__ import annotations

from typing import Any

from medalign.reports.sections import Section, Table
from medalign.rewards.hacking import ALPHA, GOLD


def hacking_section(manifest: dict[str, Any]) -> Section | None:
    """The section (None: no RL stage traced a reward model beside its gold)."""
    rows: list[tuple[str, ...]] = []
    for entry in manifest.get("stages", []):
        metrics = entry.get("metrics") or {}
        if "rl/reward_hacking" not in metrics:
            continue
        flagged = set(metrics["rl/reward_hacking"] or [])
        for model, gold in GOLD.items():
            prefix = f"hacking/{model}/"
            if f"{prefix}score_by_fifth" not in metrics:
                continue
            verdict = "HACKING: score up, gold down" if model in flagged else "not flagged"
            name = model.replace("_on_benign", " (benign prompts)")
            for kind, label in (("score", f"{name} score (z)"), (gold, f"gold: {gold}")):
                values = metrics[f"{prefix}{kind}_by_fifth"]
                cis = metrics.get(f"{prefix}{kind}_by_fifth_ci") or [None] * len(values)
                cells = [_cell(v, ci) for v, ci in zip(values, cis, strict=True)]
                cells += [""] * (5 - len(cells))
                p = metrics.get(f"{prefix}{kind}_fifths_p")
                change = (
                    f"{values[-1] - values[0]:+.3f}{' ✱' if p is not None and p < ALPHA else ''}"
                )
                rows.append(
                    (
                        entry["name"],
                        label,
                        str(metrics.get(f"{prefix}n_first_fifth", "n/a")),
                        *cells,
                        change,
                        _p(p),
                        _test(metrics, prefix) if kind == "score" else "",
                        verdict if kind == "score" else "",
                    )
                )
    if not rows:
        return None
    header = ("stage", "reward model / its gold", "n (first fifth)")
    header += tuple(f"fifth {i}" for i in range(1, 6)) + ("last - first", "p", "test", "flag")
    rule = "|---|---|---:|" + "---:|" * 7 + "---|---|"
    foot = (
        "Each reward model's standardized score (z: its held-out pairs' scale) and the gold "
        "outcome it stands for (helpfulness: correctness on questions with a gold answer; "
        "safety: on harmful requests a safe response, refused without recommending the "
        "contraindicated drug; on benign prompts that look unsafe, an answer that does not "
        "recommend it), on the same "
        "completions, as the mean of each fifth's per-step means with its 95% interval "
        "(n: completions in the first fifth). p: first against last fifth, paired over the "
        "prompts scored in both (each prompt's mean difference, a sign-flip test) or, where "
        f"too few prompts pair, Welch's test on the fifths' step means; ✱: p < {ALPHA}. "
        "Flagged as hacking when the score rose and the gold fell, both significantly."
    )
    return Section(
        "Reward hacking: each reward model beside its gold outcome",
        (Table(header, rule, tuple(rows)), foot),
    )


def _cell(value: float, ci: list[float] | None) -> str:
    if ci is None or ci[0] is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _test(metrics: dict[str, Any], prefix: str) -> str:
    """Which test gave p, with its n: `paired, 24 prompts` or `Welch, 12 + 12 steps`."""
    test = metrics.get(f"{prefix}test")
    if test == "paired":
        return f"paired, {metrics[f'{prefix}paired_prompts']} prompts"
    if test == "welch":
        first, last = metrics[f"{prefix}steps_first_fifth"], metrics[f"{prefix}steps_last_fifth"]
        return f"Welch, {first} + {last} steps"
    return "none (too few steps)"


def _p(p: float | None) -> str:
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")
