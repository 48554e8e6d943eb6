"""Start-up refusals for `eval.mode=cot` and its keys, and the one refusal stage=compare
needs: scores measured under different protocols are never paired.

    check_cot(cfg, evaluates)                # medalign/checks.py, before any model loads
    check_same_protocol(runs, datasets)      # medalign/compare/engine.py

Why: a sampling setting that the mode ignores, k identical greedy answers called maj@k, or
a log-likelihood task run "as CoT" by lm-eval would each give a number that silently
means something else; a loglik accuracy paired with a CoT accuracy is a change of
protocol, not of model. Each is one line naming the key (or both runs) and the fix.
"""

from __future__ import annotations

import logging
from typing import Any

from medalign.errors import MedalignError

log = logging.getLogger(__name__)


def check_cot(cfg: Any, evaluates: bool) -> None:
    """eval.samples, eval.temperature, eval.max_new_tokens_per_dataset and, where the run
    `evaluates` (its StageSpec says so; read by checks.py, above this layer) with
    eval.backend=lm_eval, that every task is generative."""
    ecfg = cfg.eval
    if ecfg.samples < 1:
        raise MedalignError(
            f"config eval.samples={ecfg.samples}: must be >= 1 (answers per question; "
            "eval.samples=8 eval.temperature=0.7 gives maj@8)"
        )
    if ecfg.temperature < 0:
        raise MedalignError(f"config eval.temperature={ecfg.temperature}: must be >= 0 (0: greedy)")
    if ecfg.samples > 1 and ecfg.temperature == 0:
        raise MedalignError(
            f"config eval.samples={ecfg.samples} with eval.temperature=0: greedy decoding "
            f"gives {ecfg.samples} identical answers, so maj@{ecfg.samples} would be the greedy "
            "answer; set eval.temperature>0 (e.g. 0.7), or eval.samples=1"
        )
    changed = {"eval.samples": ecfg.samples != 1, "eval.temperature": ecfg.temperature != 0}
    for key, is_set in changed.items():
        if is_set and ecfg.mode != "cot":
            raise MedalignError(
                f"config {key}: read by eval.mode=cot only, so eval.mode={ecfg.mode} would "
                "ignore it; add eval.mode=cot"
            )
    for name, tokens in (ecfg.max_new_tokens_per_dataset or {}).items():
        if not isinstance(tokens, int) or tokens < 1:
            raise MedalignError(
                f"config eval.max_new_tokens_per_dataset.{name}={tokens!r}: must be >= 1"
            )
        if ecfg.backend == "builtin" and name not in ecfg.datasets:
            raise MedalignError(
                f"config eval.max_new_tokens_per_dataset.{name}: {name!r} is not evaluated "
                f"(eval.datasets={list(ecfg.datasets)})"
            )
    check_also_cot(ecfg)
    if evaluates and ecfg.backend == "lm_eval":
        _check_lm_eval_cot(cfg)


def check_also_cot(ecfg: Any, cot_modes: dict[str, bool] | None = None) -> None:
    """eval.also_cot: datasets scored both ways when they are evaluated (a name not in
    eval.datasets is not scored: `experiment=world eval.datasets=[pubmedqa]` keeps
    working; an unknown name is refused with the other dataset lists, checks.py), under
    a mode that is not cot already; `cot_modes` (dataset -> whether its Task answers by
    CoT, from checks.py) where known."""
    for name in ecfg.also_cot or []:
        if ecfg.backend != "builtin":
            raise MedalignError(
                f"config eval.also_cot: read by eval.backend=builtin only (eval.backend="
                f"{ecfg.backend}); name CoT tasks in eval.lm_eval.tasks instead"
            )
        if name not in ecfg.datasets:
            log.warning(
                "eval.also_cot: %s is not in eval.datasets=%s, so it is not scored either way",
                name,
                list(ecfg.datasets),
            )
        if ecfg.mode == "cot":
            raise MedalignError(
                f"config eval.also_cot=[{name}] with eval.mode=cot: every choice dataset is "
                "scored by CoT already; drop one of them"
            )
        if cot_modes is not None and not cot_modes.get(name, True):
            raise MedalignError(
                f"config eval.also_cot: {name!r} is not a multiple-choice dataset, so it "
                "has no chain-of-thought scoring (RadQA and MedSafetyBench generate already)"
            )


def _check_lm_eval_cot(cfg: Any) -> None:
    """With lm-eval, eval.mode=cot only says its tasks are generative (their YAML's filters
    extract the answer): a log-likelihood task is refused, naming it; k samples are the
    task's `repeats`, not eval.samples."""
    ecfg = cfg.eval
    if ecfg.mode != "cot":
        return
    for key, value in (
        ("eval.samples", ecfg.samples != 1),
        ("eval.temperature", ecfg.temperature != 0),
        ("eval.max_new_tokens_per_dataset", bool(ecfg.max_new_tokens_per_dataset)),
    ):
        if value:
            raise MedalignError(
                f"config {key} with eval.backend=lm_eval: lm-eval's task YAML sets it "
                "(generation_kwargs, repeats); read by the built-in backend only"
            )
    from medalign.eval.harness import check_config

    manager = check_config(ecfg)
    for task, output_type in output_types(manager, list(ecfg.lm_eval.tasks)).items():
        if output_type != "generate_until":
            raise MedalignError(
                f"config eval.mode=cot with eval.backend=lm_eval: task {task!r} is "
                f"{output_type} (scored by log-likelihood), not generate_until; name "
                "generative tasks (a generate_until task YAML with regex filters) or "
                "drop eval.mode=cot"
            )


def output_types(manager: Any, names: list[str]) -> dict[str, str]:
    """{task: output_type} for every task the names expand to (groups and tags opened),
    read from lm-eval's task index (no dataset is loaded)."""
    from lm_eval.tasks._index import Kind

    index = manager.task_index
    found: dict[str, str] = {}

    def visit(name: str) -> None:
        entry = index.get(name)
        if entry is None:
            return
        if entry.kind == Kind.GROUP:
            for child in (entry.cfg or {}).get("task", []):
                visit(child if isinstance(child, str) else child.get("task", ""))
        elif entry.kind == Kind.TAG:
            for other, e in index.items():
                if name in e.tags:
                    visit(other)
        else:
            found[name] = str((entry.cfg or {}).get("output_type", "generate_until"))

    for name in manager.match_tasks(names):
        visit(name)
    return found


def check_same_protocol(runs: list[Any], datasets: list[str]) -> None:
    """Refuse pairing two runs that scored a dataset under different protocols (loglik vs
    cot greedy vs cot maj@8): one line naming both runs and both protocols."""
    for dataset in datasets:
        seen: dict[str, Any] = {}
        for run in runs:
            result = run.results.get(dataset) or {}
            name = result.get("protocol") or result.get("mode")
            if name:
                seen.setdefault(name, run)
        if len(seen) > 1:
            (pa, a), (pb, b) = list(seen.items())[:2]
            raise MedalignError(
                f"compare: {dataset}: {a.label} was scored under {pa} and {b.label} under "
                f"{pb} (eval.mode): different protocols measure different things; evaluate "
                "both the same way"
            )
