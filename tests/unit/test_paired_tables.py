"""The paired test inside the tables medalign already writes: the curriculum's results.md
(n, intervals, each stage's change; forgetting only when significant), the sweep summary
(each job against the first, seeds pooled; a tie names no best) and report.html."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from medalign.config import validate
from tests.conftest import compose
from tests.run_fixtures import write_eval_run


def _acc(n: int, rate: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < rate) for _ in range(n)]


def _curriculum(root: Path, medqa_after: list[float]) -> Path:
    """before -> pubmedqa (learns pubmedqa) -> medqa: pubmedqa after medqa is given."""
    run = root / "cur"
    pub_before, pub_learned = _acc(200, 0.3, 1), _acc(200, 0.8, 2)
    evals = {
        "before": {"pubmedqa": pub_before, "medqa": _acc(200, 0.3, 3)},
        "pubmedqa": {"pubmedqa": pub_learned, "medqa": _acc(200, 0.3, 3)},
        "medqa": {"pubmedqa": medqa_after, "medqa": _acc(200, 0.3, 3)},
    }
    stages = []
    for k, (name, values) in enumerate(evals.items()):
        folder = write_eval_run(run / f"{k}-{name}", values)
        metrics = {f"eval/{d}/acc": sum(v) / len(v) for d, v in values.items()}
        stages.append({"name": name, "dir": str(folder), "status": "done", "metrics": metrics})
    manifest = {
        "kind": "curriculum",
        "overrides": [],
        "data_source": "synthetic world (seed 0, 40 diseases; invented facts, not medicine)",
        "stages": stages,
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def _write_results(run: Path) -> str:
    from medalign.reports.results import results_table, write_results

    manifest = json.loads((run / "manifest.json").read_text())
    manifest["results"] = results_table(manifest)  # as the curriculum records it first
    (run / "manifest.json").write_text(json.dumps(manifest))
    cfg = validate(compose("logger=none", "compare.resamples=1000"))
    write_results(run, manifest["results"], cfg, manifest)
    return (run / "results.md").read_text()


def test_results_md_shows_n_intervals_and_calls_a_significant_drop_forgetting(
    tmp_path: Path,
) -> None:
    run = _curriculum(tmp_path, medqa_after=_acc(200, 0.3, 1))  # back to the start
    text = _write_results(run)
    assert "pubmedqa (test, n=200)" in text
    assert "| before | " in text and "[0." in text  # scores carry intervals
    rows = {
        (r["stage"], r["dataset"]): r for r in json.loads((run / "paired_changes.json").read_text())
    }
    assert rows[("pubmedqa", "pubmedqa")]["verdict"] == "gain"
    assert rows[("medqa", "pubmedqa")]["verdict"] == "forgetting"
    assert rows[("medqa", "medqa")]["verdict"] == "not significant"
    assert "| medqa | pubmedqa | acc |" in text and "| forgetting |" in text
    html = (run / "report.html").read_text()
    assert 'id="changes"' in html and "forgetting" in html
    assert "Data: synthetic world (seed 0, 40 diseases; invented facts" in html


def test_a_drop_within_noise_is_not_forgetting(tmp_path: Path) -> None:
    learned = _acc(200, 0.8, 2)
    slightly = learned[:]
    for k in range(0, 200, 50):  # 4 questions of 200 lost
        slightly[k] = 0.0
    run = _curriculum(tmp_path, medqa_after=slightly)
    _write_results(run)
    rows = {
        (r["stage"], r["dataset"]): r for r in json.loads((run / "paired_changes.json").read_text())
    }
    row = rows[("medqa", "pubmedqa")]
    assert row["previous"]["diff"] < 0 and row["verdict"] == "not significant"


def _sweep_job(sweep: Path, k: int, overrides: list[str], metric: float, **run) -> Path:
    job = sweep / f"{k}_medmcqa"
    if run:
        write_eval_run(job, **run, overrides=overrides)
    else:
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    stage = {"status": "done", "metrics": {"eval/medmcqa/acc": metric}}
    (job / "manifest.json").write_text(json.dumps({"stages": [stage]}))
    return job


def test_a_sweep_whose_best_jobs_tie_names_no_best(tmp_path: Path) -> None:
    from medalign.sweep import write_summary

    sweep = tmp_path / "sweep"
    for k, (rank, value) in enumerate([(4, 0.3), (8, 0.3), (16, 0.2)]):
        _sweep_job(sweep, k, ["stage=medmcqa", f"lora.r={rank}"], value)
    write_summary(sweep, "eval/medmcqa/acc")
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["best"] is None and summary["tied"] == ["lora.r=4", "lora.r=8"]
    text = (sweep / "sweep_summary.md").read_text()
    assert "No single best: 2 jobs tie at 0.3000 (lora.r=4; lora.r=8)" in text
    assert "| 0_medmcqa | lora.r=4 | done |" in text  # labelled by what it changed


def test_sweep_summary_compares_each_job_with_the_first_seeds_pooled(tmp_path: Path) -> None:
    from medalign.sweep import write_summary

    sweep = tmp_path / "sweep"
    k = 0
    for rank, rate in ((8, 0.3), (16, 0.6)):
        for seed in (1, 2):
            values = {"medmcqa": _acc(150, rate, 10 * seed + rank)}
            overrides = ["stage=medmcqa", f"lora.r={rank}", f"seed={seed}"]
            _sweep_job(sweep, k, overrides, rate, correct=values, seed=seed, lora_r=rank)
            k += 1
    # two seeds a configuration, under compare.min_seeds (3): exploratory, never a gain
    write_summary(sweep, "eval/medmcqa/acc", cfg=compose("compare.resamples=1000"))
    (row,) = json.loads((sweep / "sweep_summary.json").read_text())["paired"]["rows"]
    assert row["verdict"] == "2-seed: exploratory"
    cfg = compose("compare.resamples=1000", "compare.min_seeds=2")
    write_summary(sweep, "eval/medmcqa/acc", cfg=cfg)
    paired = json.loads((sweep / "sweep_summary.json").read_text())["paired"]
    assert paired["baseline"] == "lora.r=8 (seeds 1,2)"
    (row,) = paired["rows"]
    assert row["label"] == "lora.r=16 (seeds 1,2)" and row["seeds"] == 2
    assert row["verdict"] == "gain"
    assert "## Each job against lora.r=8 (seeds 1,2)" in (sweep / "sweep_summary.md").read_text()


def test_the_sweep_table_shows_how_many_questions_each_metric_counts(tmp_path: Path) -> None:
    from medalign.sweep import write_summary

    sweep = tmp_path / "sweep"
    for k, rank in enumerate((8, 16)):
        values = {"medmcqa": _acc(40, 0.3 + 0.1 * k, k)}
        _sweep_job(
            sweep, k, ["stage=medmcqa", f"lora.r={rank}"], 0.3 + k / 10, correct=values, lora_r=rank
        )
    write_summary(sweep, "eval/medmcqa/acc", cfg=compose("compare.resamples=1000"))
    assert (
        "| 0_medmcqa | lora.r=8 | done | 0.3000 | 40 |" in (sweep / "sweep_summary.md").read_text()
    )


def test_the_forgetting_table_measures_each_trained_dataset_from_its_best_row(
    tmp_path: Path,
) -> None:
    text = _write_results(_curriculum(tmp_path, medqa_after=_acc(200, 0.3, 1)))
    section = text.split("## Forgetting")[1]
    assert "| pubmedqa | acc | pubmedqa | medqa | -0." in section
    assert section.split("| pubmedqa | acc |")[1].split("\n")[0].endswith("| forgetting |")
    # issue 36: the last - best cell of a dataset whose best row is the last was empty
    assert "| medqa | acc | medqa | medqa | no drop: the last row is the best | best at" in section
    assert "|  |" not in section.split("\n## ")[0]
    learned = _acc(200, 0.8, 2)
    kept = _write_results(_curriculum(tmp_path / "kept", medqa_after=learned[:]))
    assert "| pubmedqa | acc | pubmedqa | medqa | " in kept
    row = kept.split("## Forgetting")[1].split("| pubmedqa | acc |")[1].split("\n")[0]
    assert "no significant drop" in row or "best at the end" in row


def test_a_difference_below_a_thousandth_is_not_printed_as_zero() -> None:
    """A significant change of -0.0002 (a continuous score over many questions) read
    "-0.000 [-0.000, -0.000] p 0.030": a marked change that shows no size, and one sign
    away from "no change". It keeps two significant digits instead."""
    from medalign.compare.report import diff_cell
    from medalign.reports.paired import change_text

    row = {"diff": -0.00021, "ci_low": -0.00038, "ci_high": -0.00004, "significant": True}
    for text in (diff_cell(row), change_text({**row, "p_holm": 0.03})):
        assert "0.000" not in text, text
        assert "-2.1e-04" in text and "-3.8e-04" in text and "-4.0e-05" in text, text
    assert diff_cell({**row, "diff": 0.25, "ci_low": 0.1, "ci_high": 0.4}).startswith("+0.250")
    assert diff_cell({**row, "diff": 0.0, "ci_low": 0.0, "ci_high": 0.0}).startswith("+0.000")


def test_false_confidence_columns_carry_their_own_n_and_interval(tmp_path: Path) -> None:
    """`pubmedqa false-conf` is a share of the maybe questions only: its column showed a
    bare number (no n, no interval) and the plot labelled it with all of PubMedQA's n."""
    from statsmodels.stats.proportion import proportion_confint

    from medalign.reports.paired import scores_markdown, stage_scores
    from medalign.reports.results import results_table

    stage = tmp_path / "1-pubmedqa"
    (stage / "eval").mkdir(parents=True)
    result = {
        "n": 600,
        "split": "test",
        "metrics": {
            "acc": {"value": 0.6, "ci": [0.56, 0.64]},
            "false_confidence": {"value": 0.25, "n": 200},
        },
    }
    (stage / "eval" / "results.json").write_text(json.dumps({"pubmedqa": result}))
    metrics = {"eval/pubmedqa/acc": 0.6, "eval/pubmedqa/false_confidence": 0.25}
    manifest = {"stages": [{"name": "pubmedqa", "dir": str(stage), "metrics": metrics}]}
    cell = stage_scores(manifest)["pubmedqa"]["pubmedqa false-conf"]
    low, high = proportion_confint(50, 200, method="wilson")
    assert cell["n"] == 200 and cell["ci"] == pytest.approx([low, high])
    table = results_table(manifest)
    text = scores_markdown(manifest, table, sorted(table["pubmedqa"]))
    assert "pubmedqa false-conf (test, n=200)" in text
    assert f"0.250 [{low:.3f}, {high:.3f}]" in text


def test_a_drop_still_above_the_first_evaluation_is_a_loss_not_forgetting(
    tmp_path: Path,
) -> None:
    """Issue 36: "forgetting" was printed for a score still significantly above where it
    started, and the verdict read only "against the previous stage". Each row now gives a
    verdict against the first evaluation too, and forgetting needs a significant drop from
    the best row that leaves the score no longer significantly above the first evaluation."""
    learned = _acc(200, 0.8, 2)
    dropped = learned[:]
    ones = [k for k, v in enumerate(learned) if v == 1.0]
    for k in ones[:40]:  # 40 learned questions lost: ~0.6, still far above 0.3
        dropped[k] = 0.0
    run = _curriculum(tmp_path, medqa_after=dropped)
    text = _write_results(run)
    rows = {
        (r["stage"], r["dataset"]): r for r in json.loads((run / "paired_changes.json").read_text())
    }
    row = rows[("medqa", "pubmedqa")]
    assert row["previous"]["verdict"] == "loss" and row["before"]["verdict"] == "gain"
    assert row["verdict"] == "loss" and row["verdict_before"] == "gain"
    assert rows[("pubmedqa", "pubmedqa")]["verdict_before"] == "gain"
    assert "| verdict vs previous stage | verdict vs first evaluation |" in text
    assert "| medqa | pubmedqa | acc |" in text and "| loss | gain |" in text
    paired = text.split("## What each stage changed")[1].split("\n## ")[0]
    (line,) = [x for x in paired.splitlines() if x.startswith("| medqa | pubmedqa |")]
    assert "forgetting" not in line
    html = (run / "report.html").read_text()
    assert "<th>verdict vs first evaluation</th>" in html


def test_forgetting_is_a_significant_drop_from_the_best_row_not_only_from_the_previous(
    tmp_path: Path,
) -> None:
    """A dataset forgotten at one stage and still forgotten at the next: against the
    previous stage nothing changed, but the drop from its best row is significant (the
    forgetting table's definition), so the later row says forgetting too."""
    from medalign.compare.engine import CompareSettings
    from medalign.reports.paired import changes

    forgotten = _acc(200, 0.3, 1)  # pubmedqa back to where it started
    run = _curriculum(tmp_path, medqa_after=forgotten)
    manifest = json.loads((run / "manifest.json").read_text())
    extra = write_eval_run(run / "3-radqa", {"pubmedqa": forgotten, "medqa": _acc(200, 0.3, 3)})
    manifest["stages"].append({"name": "radqa", "dir": str(extra), "status": "done"})
    (run / "manifest.json").write_text(json.dumps(manifest))
    settings = CompareSettings(alpha=0.05, resamples=1000, seed=0, metrics=["acc"])
    rows = {(r["stage"], r["dataset"]): r for r in changes(run, manifest, settings)}
    row = rows[("radqa", "pubmedqa")]
    assert row["previous"]["verdict"] == "not significant"
    assert row["verdict"] == "forgetting" and row["best"] == "pubmedqa"
    assert rows[("medqa", "pubmedqa")]["verdict"] == "forgetting"


def test_a_columns_header_n_is_the_n_of_its_cells(tmp_path: Path) -> None:
    """Issue 36: results.md read `radqa false-conf (test, n=0)` above cells whose Wilson
    intervals were those of n=30: the header took the first stage's n (the model before
    training gave no unanswerable-question verdicts to count). A column whose cells share
    one n names it; one whose cells differ says so, and each cell names its own n."""
    from medalign.reports.paired import scores_markdown, stage_scores
    from medalign.reports.results import results_table

    stages = []
    for k, (name, share) in enumerate(
        [("before", {"value": float("nan"), "n": 0}), ("radqa", {"value": 0.2, "n": 30})]
    ):
        folder = tmp_path / f"{k}-{name}"
        (folder / "eval").mkdir(parents=True)
        result = {
            "n": 120,
            "split": "test",
            "metrics": {"f1": {"value": 0.4, "ci": [0.3, 0.5]}, "false_confidence": share},
        }
        (folder / "eval" / "results.json").write_text(json.dumps({"radqa": result}))
        metrics = {"eval/radqa/f1": 0.4, "eval/radqa/false_confidence": share["value"]}
        stages.append({"name": name, "dir": str(folder), "metrics": metrics})
    manifest = {"stages": stages}
    assert stage_scores(manifest)["radqa"]["radqa false-conf"]["n"] == 30
    table = results_table(manifest)
    text = scores_markdown(manifest, table, ["radqa", "radqa false-conf"])
    assert "n=0" not in text.splitlines()[0]
    assert "radqa (test, n=120)" in text
    assert "radqa false-conf (test, n per cell)" in text
    assert "| before | 0.400 [0.300, 0.500] | n/a (n=0) |" in text
    assert "| radqa | 0.400 [0.300, 0.500] | 0.200 [" in text and "] (n=30) |" in text
    from medalign.reports.results import _sizes

    assert _sizes(manifest) == {"radqa": 120, "radqa false-conf": "0-30"}  # results.png
