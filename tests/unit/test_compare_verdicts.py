"""Verdicts a reviewer accepts (issue 36): a primary metric per dataset, no claim from too
few seeds, a Monte Carlo p that cannot flip a verdict, intervals that say they are
unadjusted, and labels that name what the compared runs changed."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest

from medalign.compare.engine import CompareSettings, compare_groups
from medalign.compare.report import markdown
from medalign.compare.runs import group_by_seed, resolve_entry
from tests.run_fixtures import write_eval_run


def scores(n: int, rate: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < rate) for _ in range(n)]


def with_scores(folder: Path, dataset: str, per_metric: dict[str, list[float]], **kw) -> Path:
    """A finished evaluation whose predictions carry several per-question metrics."""
    first = next(iter(per_metric.values()))
    write_eval_run(folder, {dataset: first}, **kw)
    rows = [
        {"dataset": dataset, "id": f"q{k}", "scores": {m: v[k] for m, v in per_metric.items()}}
        for k in range(len(first))
    ]
    (folder / "eval" / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def table_of(*entries: str, settings: CompareSettings) -> dict:
    runs = [r for e in entries for r in resolve_entry(e)]
    return compare_groups(group_by_seed(runs), 0, settings)


def test_each_task_declares_its_primary_metric() -> None:
    from medalign.tasks.base import task_class

    declared = {n: task_class(n).primary_metric for n in ("medqa", "medmcqa", "pubmedqa")}
    assert declared == {"medqa": "acc", "medmcqa": "acc", "pubmedqa": "acc"}
    assert task_class("radqa").primary_metric == "f1"
    assert task_class("medsafetybench").primary_metric == "safe_response_rate"
    assert task_class("mmlu_medical").primary_metric == "acc"


def test_holm_runs_over_the_primary_metric_and_the_rest_is_secondary(tmp_path: Path) -> None:
    """The MedMCQA trial: acc not significant, acc_norm a "gain ✱" on the same comparison."""
    n = 300
    acc = scores(n, 0.4, 1)
    base = {"acc": acc, "acc_norm": scores(n, 0.3, 2)}
    run = {"acc": acc[:-6] + [1.0 - v for v in acc[-6:]], "acc_norm": scores(n, 0.6, 3)}
    a = with_scores(tmp_path / "a", "medmcqa", base)
    b = with_scores(tmp_path / "b", "medmcqa", run, lora_r=16)
    settings = CompareSettings(resamples=500)
    table = table_of(str(a), str(b), settings=settings)
    rows = {r["metric"]: r for r in table["rows"]}
    assert rows["acc"]["role"] == "primary" and rows["acc"]["verdict"] == "not significant"
    assert rows["acc_norm"]["role"] == "secondary" and rows["acc_norm"]["p"] < 1e-6
    assert rows["acc_norm"]["verdict"] == "secondary" and not rows["acc_norm"]["significant"]
    assert rows["acc_norm"]["p_holm"] is None
    assert rows["acc"]["p_holm"] == rows["acc"]["p"]  # a family of one primary row
    text = markdown(table)
    assert "✱" not in text.split("| verdict |", 1)[1]
    assert "acc_norm (secondary)" in text and "acc (primary)" in text
    named = table_of(str(a), str(b), settings=CompareSettings(resamples=500, primary=["acc_norm"]))
    rows = {r["metric"]: r for r in named["rows"]}
    assert rows["acc_norm"]["verdict"] == "gain" and rows["acc"]["role"] == "secondary"


def test_radqa_and_safety_claims_are_on_f1_and_the_safe_response_rate(tmp_path: Path) -> None:
    n = 80
    a = with_scores(
        tmp_path / "a",
        "radqa",
        {"exact": scores(n, 0.2, 1), "f1": [0.3] * n},
    )
    b = with_scores(
        tmp_path / "b", "radqa", {"exact": scores(n, 0.8, 2), "f1": [0.31] * n}, lora_r=4
    )
    rows = {r["metric"]: r for r in table_of(str(a), str(b), settings=CompareSettings())["rows"]}
    assert rows["f1"]["role"] == "primary" and rows["exact"]["role"] == "secondary"
    s = with_scores(tmp_path / "s", "medsafetybench", {"refusal_rate": scores(n, 0.5, 3)})
    t = with_scores(tmp_path / "t", "medsafetybench", {"refusal_rate": scores(n, 0.5, 4)}, lora_r=4)
    (row,) = table_of(str(s), str(t), settings=CompareSettings(resamples=200))["rows"]
    assert row["role"] == "primary"  # real MedSafetyBench: no drug named, refusal it is
    both = {"refusal_rate": scores(n, 0.5, 3), "safe_response_rate": scores(n, 0.4, 5)}
    u = with_scores(tmp_path / "u", "medsafetybench", both)
    v = with_scores(tmp_path / "v", "medsafetybench", both, lora_r=4)
    rows = {r["metric"]: r for r in table_of(str(u), str(v), settings=CompareSettings())["rows"]}
    assert rows["safe_response_rate"]["role"] == "primary"  # the world: judged by the gold
    assert rows["refusal_rate"]["role"] == "secondary"


def _sweep(root: Path, seeds: tuple[int, ...], n: int = 200) -> Path:
    for k, (replay, seed) in enumerate(itertools.product((None, 0.5), seeds)):
        overrides = [f"seed={seed}"] + ([f"curriculum.replay={replay}"] if replay else [])
        write_eval_run(
            root / str(k),
            {"medqa": scores(n, 0.3 if replay is None else 0.55, 10 * seed + k)},
            seed=seed,
            overrides=overrides,
            lora_r=8 if replay is None else 9,  # the recorded configs differ too
        )
    return root


def test_one_seed_per_configuration_is_exploratory_and_says_how_to_run_the_rest(
    tmp_path: Path,
) -> None:
    a = write_eval_run(tmp_path / "a", {"medqa": scores(300, 0.3, 1)}, overrides=[])
    b = write_eval_run(
        tmp_path / "b",
        {"medqa": scores(300, 0.6, 2)},
        overrides=["curriculum.replay=0.5"],
        lora_r=16,
    )
    table = table_of(str(a), str(b), settings=CompareSettings(resamples=500, min_seeds=3))
    (row,) = table["rows"]
    assert row["p"] < 1e-6 and row["verdict"] == "single-seed: exploratory"
    assert not row["significant"]
    text = markdown(table)
    assert "✱" not in text.split("| verdict |", 1)[1]
    # -m before the overrides: after them Hydra's argparse refuses the command
    assert "python -m medalign -m curriculum.replay=0.5 seed=1,2" in text
    assert all("python -m medalign -m " in n and " seed=" in n for n in table["needs"])
    three = _sweep(tmp_path / "sweep", (1, 2, 3))
    (row,) = table_of(str(three), settings=CompareSettings(resamples=500, min_seeds=3))["rows"]
    assert row["seeds"] == 3 and row["verdict"] == "gain" and row["significant"]


def test_stage_compare_defaults_to_three_seeds(tmp_path: Path) -> None:
    from medalign.run import run as run_stage
    from tests.conftest import compose

    sweep = _sweep(tmp_path / "sweep", (1, 2))
    out = tmp_path / "compare"
    run_stage(
        compose("stage=compare", f"compare.runs=[{sweep}]", "logger=none", "eval.plots=false"),
        out,
    )
    saved = json.loads((out / "compare.json").read_text())
    (row,) = saved["rows"]
    assert saved["min_seeds"] == 3 and row["verdict"] == "2-seed: exploratory"
    assert "seed=3" in (out / "compare.md").read_text()


def _exact_sign_flip_p(diffs: np.ndarray) -> float:
    observed = abs(diffs.sum())
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=len(diffs))))
    return float(np.mean(np.abs(signs @ diffs) >= observed - 1e-9))


def test_a_p_planted_at_alpha_gives_the_same_verdict_whatever_the_seed(tmp_path: Path) -> None:
    """The Brier row that read "loss ✱" at one draw seed and "not significant" at others:
    a permutation p whose Monte Carlo interval straddles alpha is resampled more, and where
    it still straddles it, the verdict says so instead of following the draw."""
    rng = np.random.default_rng(4)
    diffs = np.round(rng.normal(0.08, 0.15, size=16), 3)
    exact = _exact_sign_flip_p(diffs)
    assert 0.01 < exact < 0.2
    base = [0.5] * 16
    a = with_scores(tmp_path / "a", "radqa", {"f1": base})
    b = with_scores(tmp_path / "b", "radqa", {"f1": list(0.5 + diffs)}, lora_r=4)
    verdicts, ps = set(), []
    for seed in range(5):
        settings = CompareSettings(
            alpha=exact, resamples=1000, max_resamples=64_000, seed=seed, min_seeds=1
        )
        (row,) = table_of(str(a), str(b), settings=settings)["rows"]
        verdicts.add(row["verdict"])
        ps.append(row["p"])
        assert row["p_mc_se"] == pytest.approx(np.sqrt(row["p"] * (1 - row["p"]) / 64_000))
    assert verdicts == {"undecided at 64000 resamples"}
    # a p clearly on one side of alpha is decided at the first 1000 draws
    settings = CompareSettings(alpha=exact * 3, resamples=1000, seed=0)
    (row,) = table_of(str(a), str(b), settings=settings)["rows"]
    assert row["verdict"] == "gain" and row["p_resamples"] == 1000


def test_the_interval_says_it_is_unadjusted_beside_a_verdict_that_is_no_claim(
    tmp_path: Path,
) -> None:
    """MedQA -> PubMedQA read +0.065 [+0.007, +0.123] beside "not significant"."""
    n = 200
    base = scores(n, 0.4, 1)
    run = list(base)
    flipped = [k for k in range(n) if base[k] == 0.0][:20]
    for k in flipped:
        run[k] = 1.0
    for k in [k for k in range(n) if base[k] == 1.0][:8]:
        run[k] = 0.0
    a = write_eval_run(tmp_path / "a", {"medqa": base, "pubmedqa": scores(50, 0.5, 3)})
    b = write_eval_run(tmp_path / "b", {"medqa": run, "pubmedqa": scores(50, 0.5, 4)}, lora_r=4)
    table = table_of(str(a), str(b), settings=CompareSettings(resamples=2000))
    rows = {r["dataset"]: r for r in table["rows"]}
    medqa = rows["medqa"]
    assert medqa["ci_low"] > 0 and medqa["verdict"] == "not significant", medqa
    text = markdown(table)
    assert "unadjusted" in text.split("|", 1)[0]
    line = next(x for x in text.splitlines() if x.startswith("| b") and "medqa" in x)
    assert "†" in line and "✱" not in line


def test_labels_name_every_override_in_which_the_runs_differ(tmp_path: Path) -> None:
    common = ["experiment=curriculum"]
    a = write_eval_run(tmp_path / "10-00", {"medqa": scores(60, 0.4, 1)}, overrides=common)
    b = write_eval_run(
        tmp_path / "11-00",
        {"medqa": scores(60, 0.4, 2)},
        overrides=[*common, "curriculum.replay=0.5"],
        lora_r=4,
    )
    table = table_of(str(a), str(b), settings=CompareSettings(resamples=200))
    labels = [r["label"] for r in table["runs"]]
    assert labels[1] == "11-00 [curriculum.replay=0.5]"
    assert "experiment=curriculum" not in labels[1]
    assert table["rows"][0]["label"] == labels[1]


def _curriculum(root: Path, overrides: list[str], seed: int) -> Path:
    stages = []
    for k, name in enumerate(["before", "medqa"]):
        write_eval_run(root / f"{k}-{name}", {"medqa": scores(80, 0.3 + 0.2 * k, seed + k)})
        stages.append({"name": name, "dir": str(root / f"{k}-{name}"), "status": "done"})
    manifest = {"kind": "curriculum", "overrides": overrides, "stages": stages}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_two_curricula_are_told_apart_by_their_differing_override(tmp_path: Path) -> None:
    """Two curricula that differ in curriculum.replay=0.5 were told apart by timestamps."""
    a = _curriculum(tmp_path / "10-00_curriculum", ["experiment=curriculum"], 1)
    b = _curriculum(
        tmp_path / "11-00_curriculum", ["experiment=curriculum", "curriculum.replay=0.5"], 5
    )
    table = table_of(str(a), str(b), settings=CompareSettings(resamples=200))
    assert [r["label"] for r in table["runs"]] == [
        "10-00_curriculum:medqa (experiment=curriculum)",
        "11-00_curriculum:medqa (experiment=curriculum) [curriculum.replay=0.5]",
    ]
    stages = table_of(f"{a}:before", f"{a}:medqa", settings=CompareSettings(resamples=200))
    assert stages["runs"][1]["label"] == "10-00_curriculum:medqa (experiment=curriculum)"


def test_seeds_pair_by_seed_where_both_configurations_ran_it(tmp_path: Path) -> None:
    """Baseline seeds 1, 2 and 42 against a run of seed 42 only: seed 42 is paired with
    seed 42 (docs/compare.md), not the baseline's first seed (the run copies seed 42's
    answers, so the right pairing differs by exactly 0)."""
    answers = {s: scores(200, 0.5, s) for s in (1, 2, 42)}
    entries = [
        write_eval_run(tmp_path / f"base{s}", {"medqa": v}, seed=s, overrides=[f"seed={s}"])
        for s, v in answers.items()
    ]
    entries.append(
        write_eval_run(
            tmp_path / "run42",
            {"medqa": answers[42]},
            seed=42,
            overrides=["curriculum.replay=0.5", "seed=42"],
            lora_r=9,  # the recorded configs differ too
        )
    )
    table = table_of(*map(str, entries), settings=CompareSettings(resamples=500, min_seeds=1))
    (row,) = table["rows"]
    assert row["diff"] == 0.0 and row["baseline"] == pytest.approx(np.mean(answers[42]))
