"""stage=compare's reading and pairing: run directories, curriculum stages and sweeps on
disk, seeds pooled, and every bad input refused in one line before anything is written."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from medalign.compare.engine import CompareSettings, compare_groups
from medalign.compare.runs import group_by_seed, resolve_entry
from medalign.errors import MedalignError
from tests.run_fixtures import write_eval_run as write_run

FAST = CompareSettings(resamples=500)


def scores(n: int, rate: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < rate) for _ in range(n)]


def table_of(*entries: str, settings: CompareSettings = FAST, pool: bool = True) -> dict:
    runs = [r for e in entries for r in resolve_entry(e)]
    return compare_groups(group_by_seed(runs, pool), 0, settings)


def test_two_runs_give_one_row_per_dataset_and_metric(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", {"medqa": scores(200, 0.3, 1), "pubmedqa": scores(50, 0.5, 2)})
    b = write_run(
        tmp_path / "b", {"medqa": scores(200, 0.6, 3), "pubmedqa": scores(50, 0.5, 2)}, lora_r=16
    )
    table = table_of(str(a), str(b))
    rows = {r["dataset"]: r for r in table["rows"]}
    assert table["baseline"] == "a [lora.r=8]" and set(rows) == {"medqa", "pubmedqa"}
    assert rows["medqa"]["verdict"] == "gain" and rows["medqa"]["significant"]
    assert rows["pubmedqa"]["diff"] == 0.0 and rows["pubmedqa"]["verdict"] == "not significant"
    assert rows["medqa"]["p_holm"] >= rows["medqa"]["p"]  # Holm over the two datasets
    for key in ("n", "baseline", "run", "diff", "ci_low", "ci_high", "p", "p_holm", "b", "c"):
        assert key in rows["medqa"]
    assert rows["medqa"]["mde"] > 0


def test_a_copy_in_another_order_is_the_same_run(tmp_path: Path) -> None:
    values = {"medqa": scores(300, 0.4, 5)}
    a = write_run(tmp_path / "a", values)
    b = write_run(tmp_path / "b", values, shuffle=True, lora_r=16)
    (row,) = table_of(str(a), str(b))["rows"]
    assert (row["diff"], row["p"], row["b"], row["c"]) == (0.0, 1.0, 0, 0)


def test_seeds_of_one_configuration_are_pooled(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for k, (rank, seed) in enumerate([(r, s) for r in (8, 16) for s in (1, 2, 3)]):
        rate = 0.3 if rank == 8 else 0.5
        write_run(
            sweep / str(k),
            {"medqa": scores(120, rate, seed * 10 + rank)},
            seed=seed,
            overrides=[f"lora.r={rank}", f"seed={seed}"],
            lora_r=rank,
        )
    table = table_of(str(sweep))
    assert [r["label"] for r in table["runs"]] == [
        "lora.r=8 (seeds 1,2,3)",
        "lora.r=16 (seeds 1,2,3)",
    ]
    (row,) = table["rows"]
    assert row["seeds"] == 3 and row["n"] == 360 and row["questions"] == 120
    assert row["clusters"] == 120  # a question's seeds resampled together
    assert row["test"] == "sign_flip_clustered"
    spread = row["seed_scores"]["run"]
    assert len(spread["per_seed"]) == 3 and spread["sd"] > 0
    assert row["verdict"] == "gain"
    separate = table_of(str(sweep), pool=False)
    assert len(separate["runs"]) == 6


def test_curriculum_stage_entries(tmp_path: Path) -> None:
    cur = tmp_path / "cur"
    stages = []
    for k, name in enumerate(["before", "medqa"]):
        write_run(cur / f"{k}-{name}", {"medqa": scores(100, 0.3 + 0.3 * k, k)})
        stages.append({"name": name, "dir": str(cur / f"{k}-{name}"), "status": "done"})
    manifest = {"kind": "curriculum", "overrides": ["experiment=curriculum"], "stages": stages}
    (cur / "manifest.json").write_text(json.dumps(manifest))
    (before,) = resolve_entry(f"{cur}:before")
    (last,) = resolve_entry(str(cur))
    assert before.label == "cur:before (experiment=curriculum)"
    assert last.label == "cur:medqa (experiment=curriculum)"
    assert "stage=medqa" in last.overrides
    with pytest.raises(MedalignError, match="no stage 'rl'; stages: before, medqa"):
        resolve_entry(f"{cur}:rl")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("fingerprint", r"evaluated on different data \(fingerprint abc vs xyz\)"),
        ("questions", r"a scored 100 questions and b 90, 90 in common; compare.on=intersection"),
        ("backend", r"scored by lm-eval .* by medalign's built-in scorer"),
        ("single", r"needs at least two runs"),
        ("seeds_only", r"all 2 runs are seeds of one configuration"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, case: str, message: str) -> None:
    values = {"medqa": scores(100, 0.4, 1)}
    a = write_run(tmp_path / "a", values, seed=1, overrides=["seed=1"])
    other = {
        "fingerprint": dict(fingerprint="xyz", lora_r=16),
        "questions": dict(lora_r=16),
        "backend": dict(backend="lm_eval", lora_r=16),
        "seeds_only": dict(seed=2, overrides=["seed=2"]),
    }
    entries = [str(a)]
    if case != "single":
        fewer = {"medqa": values["medqa"][:90]} if case == "questions" else values
        entries.append(str(write_run(tmp_path / "b", fewer, **other[case])))
    with pytest.raises(MedalignError, match=message):
        table_of(*entries)


def test_intersection_compares_the_common_questions(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", {"medqa": scores(100, 0.4, 1)})
    b = write_run(tmp_path / "b", {"medqa": scores(100, 0.4, 1)[:90]}, lora_r=16)
    (row,) = table_of(str(a), str(b), settings=CompareSettings(resamples=200, on="intersection"))[
        "rows"
    ]
    assert row["questions"] == 90


def test_a_run_without_predictions_names_the_command_to_make_them(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    with pytest.raises(MedalignError, match="no predictions.jsonl in .*stage=eval init_from="):
        resolve_entry(str(tmp_path / "bare"))
    with pytest.raises(MedalignError, match="no such directory"):
        resolve_entry(str(tmp_path / "missing"))


def test_clusters_declared_by_the_task_are_resampled_whole(tmp_path: Path) -> None:
    reports = {"radqa": [f"report{k // 5}" for k in range(100)]}
    a = write_run(tmp_path / "a", {"radqa": scores(100, 0.4, 1)}, clusters=reports)
    b = write_run(tmp_path / "b", {"radqa": scores(100, 0.5, 2)}, clusters=reports, lora_r=4)
    (row,) = table_of(str(a), str(b))["rows"]
    assert row["clusters"] == 20 and row["test"] == "sign_flip_clustered"


def test_a_run_twice_a_metric_typo_and_a_pooled_baseline_name(tmp_path: Path) -> None:
    """From a new user's trial: the same run twice was compared with itself, a metric typo
    gave an empty table, and a pooled configuration could not be named without its seeds."""
    from medalign.compare.engine import check_metrics
    from medalign.stages.compare import baseline_index

    a = write_run(tmp_path / "a", {"medqa": scores(50, 0.4, 1)})
    with pytest.raises(MedalignError, match="are the same evaluation"):
        table_of(str(a), str(a))
    runs = [r for e in (str(a),) for r in resolve_entry(e)]
    with pytest.raises(MedalignError, match="no run scored 'accc' per question; these did: acc"):
        check_metrics(group_by_seed(runs), ["accc"])
    sweep = tmp_path / "sweep"
    for k, (rank, seed) in enumerate([(r, s) for r in (4, 8) for s in (1, 2)]):
        write_run(
            sweep / str(k),
            {"medqa": scores(40, 0.4, k)},
            seed=seed,
            overrides=[f"lora.r={rank}", f"seed={seed}"],
            lora_r=rank,
        )
    groups = group_by_seed(resolve_entry(str(sweep)))
    assert baseline_index(groups, "lora.r=8") == 1
    assert baseline_index(groups, "lora.r=8 (seeds 1,2)") == 1


def test_a_sweep_of_curricula_and_a_failed_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for k, seed in enumerate((1, 2)):
        job = sweep / f"{k}_curriculum"
        write_run(job / "0-before", {"medqa": scores(30, 0.3, seed)}, seed=seed)
        stage = {"name": "before", "dir": str(job / "0-before"), "status": "done"}
        manifest = {"kind": "curriculum", "overrides": [f"seed={seed}"], "stages": [stage]}
        (job / "manifest.json").write_text(json.dumps(manifest))
        (job / ".hydra").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}"]))
    failed = sweep / "2_curriculum"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=3"]))
    runs = resolve_entry(str(sweep))
    assert [r.label for r in runs] == ["seed=1:before", "seed=2:before"]  # the failed one left out


def test_a_curriculum_job_folder_names_its_pooled_configuration_as_baseline(
    tmp_path: Path,
) -> None:
    from medalign.stages.compare import baseline_index

    sweep = tmp_path / "sweep"
    for k, (experiment, seed) in enumerate(
        [(e, s) for e in ("curriculum", "curriculum_reversed") for s in (1, 2)]
    ):
        job = sweep / f"{k}_curriculum"
        write_run(job / "0-before", {"medqa": scores(30, 0.3, k)}, seed=seed)
        stage = {"name": "before", "dir": str(job / "0-before"), "status": "done"}
        overrides = [f"experiment={experiment}", f"seed={seed}"]
        manifest = {"kind": "curriculum", "overrides": overrides, "stages": [stage]}
        (job / "manifest.json").write_text(json.dumps(manifest))
        (job / ".hydra").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    groups = group_by_seed(resolve_entry(str(sweep)))
    assert len(groups) == 2
    assert baseline_index(groups, "2_curriculum") == 1
    assert baseline_index(groups, str(sweep / "3_curriculum")) == 1
